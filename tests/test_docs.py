"""Every `birdspec ...` command in the docs and README parses with the real CLI (flags exist)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from birdspec.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "docs" / "reproduce-birdclef2021.md"]


def doc_commands(path: Path) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("birdspec "):
                commands.append(line)
    return commands


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_commands_parse(doc):
    commands = doc_commands(doc)
    assert commands, f"no birdspec commands found in {doc}"
    parser = build_parser()
    for cmd in commands:
        argv = shlex.split(cmd)[1:]
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on unknown flags
            pytest.fail(f"{doc.name}: `{cmd}` does not parse (exit {exc.code})")
        assert getattr(args, "func", None), cmd
