"""``python -m birdspec`` is the ``birdspec`` command."""

import sys

from birdspec.cli.main import main

sys.exit(main())
