"""``birdspec index`` and ``birdspec search`` on the command line: the table a reviewer gets, and exit status 2
on a missing index, a bad query and other usage errors."""

from __future__ import annotations

import pandas as pd
import pytest
from test_similarity_index import make_archive, window_run  # noqa: F401 - the module-scoped RUN backbone fixture

from birdspec.cli.main import main


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, window_run):  # noqa: F811 - the fixture imported above
    root = tmp_path_factory.mktemp("cli")
    archive = make_archive(root / "archive")
    code = main(["index", str(archive), "--backbone", str(window_run), "--out", str(root / "idx"), "--jobs", "1",
                 "--no-progress"])
    assert code == 0
    return archive, root / "idx"


def test_index_then_search_writes_a_table_and_prints_a_summary(cli_index, tmp_path, capsys):
    archive, idx = cli_index
    capsys.readouterr()
    out = tmp_path / "hits.csv"
    code = main(["search", str(idx), str(archive / "siteA" / "r0.wav"), "--start-s", "2", "--end-s", "3", "--top", "8",
                 "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["rank", "recording", "deployment", "start_s", "end_s", "similarity"]
    assert len(table) == 8 and table["rank"].tolist() == list(range(1, 9))
    assert table.iloc[0][["recording", "deployment", "start_s", "end_s"]].tolist() == ["siteA/r0.wav", "siteA", 2.0, 3.0]
    printed = capsys.readouterr().out
    assert "8 window(s) most like" in printed and "exact search" in printed and "per deployment" in printed
    assert "siteA/r0.wav" in printed


def test_rerunning_index_embeds_nothing(cli_index, window_run, capsys):  # noqa: F811
    archive, idx = cli_index
    capsys.readouterr()
    assert main(["index", str(archive), "--backbone", str(window_run), "--out", str(idx), "--jobs", "1", "--no-progress"]) == 0
    assert "0 embedded now" in capsys.readouterr().out


def test_search_to_stdout(cli_index, capsys):
    archive, idx = cli_index
    capsys.readouterr()
    assert main(["search", str(idx), str(archive / "loose.wav"), "--top", "3", "--out", "-"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "rank,recording,deployment,start_s,end_s,similarity" and len(lines) == 4


def test_usage_and_data_errors_exit_2(cli_index, window_run, tmp_path, capsys):  # noqa: F811
    archive, idx = cli_index
    query = str(archive / "siteA" / "r0.wav")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("field notes")
    cases = {
        "no such index folder": ["search", str(tmp_path / "missing"), query],
        "not an embedding index": ["search", str(tmp_path), query],
        "no such query": ["search", str(idx), str(tmp_path / "missing.wav")],
        "notes.wav": ["search", str(idx), str(not_audio)],
        "--start-s < --end-s": ["search", str(idx), query, "--start-s", "4", "--end-s", "2"],
        "--top must be >= 1": ["search", str(idx), query, "--top", "0"],
        "not a folder": ["index", query, "--backbone", str(window_run), "--out", str(tmp_path / "i2")],
        "other settings": ["index", str(archive), "--backbone", str(window_run), "--hop-s", "0.25", "--out", str(idx),
                           "--no-progress"],
    }
    for message, argv in cases.items():
        capsys.readouterr()
        assert main(argv) == 2, message
        assert message in capsys.readouterr().err, message


def test_approximate_search_of_an_index_without_a_graph_exits_2(tmp_path, window_run, capsys):  # noqa: F811
    archive = make_archive(tmp_path / "archive", {"a/x.wav": (0, 2.0)})
    assert main(["index", str(archive), "--backbone", str(window_run), "--out", str(tmp_path / "idx"), "--jobs", "1",
                 "--approximate", "never", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), str(archive / "a" / "x.wav"), "--mode", "approximate",
                 "--out", str(tmp_path / "r.csv")]) == 2
    assert "no approximate index" in capsys.readouterr().err
