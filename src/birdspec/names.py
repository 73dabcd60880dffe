"""How species names are compared: one matching key for codes, scientific and common names, whoever
compares them (the species lookup of :mod:`birdspec.data.species`, BirdNET's species list in
:mod:`birdspec.models.birdnet_classes`, the app's species completion)."""

from __future__ import annotations

import re


def normalize_name(name: str) -> str:
    """The matching key of a species name.

    >>> normalize_name("  Blyth's_Reed-Warbler ")
    'blyths reed warbler'
    """
    text = str(name).casefold().replace("'", "").replace("\u2019", "")
    return re.sub(r"[\s_\-]+", " ", text).strip()
