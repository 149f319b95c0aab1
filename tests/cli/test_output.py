"""The command's output helpers, without a server: escaping and the ready file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transport.cli.output import clean, duration, stamp, table_lines, terminal_width
from transport.cli.ready import await_ready, read_ready_file, write_ready_file


@pytest.mark.parametrize(
    ("raw", "printed"),
    [
        ("plain name", "plain name"),
        ("two\nlines", "two\\nlines"),
        ("tab\there", "tab\\there"),
        ("back\rspace", "back\\rspace"),
        ("\x1b[2Jclear", "\\x1b[2Jclear"),
        ("bell\x07", "bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b", "c1\\x9b"),
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("isolate\u2066x\u2069", "isolate\\u2066x\\u2069"),
        ("accents é and 名前 stay", "accents é and 名前 stay"),
    ],
)
def test_text_from_the_registry_prints_on_one_line_with_controls_escaped(
    raw: str, printed: str
) -> None:
    assert clean(raw) == printed


def test_non_text_values_are_escaped_through_str() -> None:
    assert clean(12) == "12"
    assert clean(None) == "None"


def test_times_and_durations_read_the_same_everywhere() -> None:
    assert stamp(None) == "-"
    assert stamp(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert [duration(ms) for ms in (None, 5, 1500, 61_000, 3_660_000)] == [
        "-",
        "5ms",
        "1.5s",
        "1m01s",
        "1h01m",
    ]


def test_the_ready_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    assert read_ready_file(path) is None
    write_ready_file(path, {"endpoint": "tcp://127.0.0.1:1", "pid": 7})
    write_ready_file(path, {"endpoint": "tcp://127.0.0.1:2", "pid": 8})
    assert json.loads(path.read_text()) == {"endpoint": "tcp://127.0.0.1:2", "pid": 8}
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"]  # no temporary left


@pytest.mark.timeout(60)
def test_a_process_that_exits_before_its_banner_is_not_ready(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdout=subprocess.PIPE, text=True)
    try:
        assert await_ready(proc, tmp_path / "ready.json", timeout=30) == (None, "")
    finally:
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.timeout(60)
def test_serve_writes_where_it_listens_before_its_banner(tmp_path: Path) -> None:
    ready_file = tmp_path / "ready.json"
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "transport.cli", "serve", "--data", str(tmp_path / "data")]
    cmd += ["--endpoint", "tcp://127.0.0.1:0", "--feed-endpoint", "tcp://127.0.0.1:0"]
    proc = subprocess.Popen(
        [*cmd, "--ready-file", str(ready_file)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready, banner = await_ready(proc, ready_file, timeout=50)
        assert ready is not None, banner
        assert ready["pid"] == proc.pid
        assert ready["data"] == str((tmp_path / "data").resolve())
        assert ready["metrics"] is None
        assert ready["endpoint"].startswith("tcp://127.0.0.1:")
        assert not ready["endpoint"].endswith(":0")
        assert f"serving requests on {ready['endpoint']}, feed on {ready['feed_endpoint']}," in (
            banner
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


HEADERS = ["ID", "NAME", "STATUS", "ELAPSED"]
LONG = "a-very-long-operation-name-that-would-wrap-a-narrow-terminal"
ROWS = [["0001", LONG, "running", "1.5s"], ["0002", "short", "completed", "12ms"]]


def test_a_long_name_is_cut_with_an_ellipsis_to_the_terminal_width() -> None:
    lines = table_lines(HEADERS, ROWS, right={3}, shrink=1, width=40)
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].split()[0] == "0001" and lines[1].split()[2:] == ["running", "1.5s"]
    name = lines[1].split()[1]
    assert name.endswith("\u2026") and LONG.startswith(name[:-1])
    assert lines[2].split() == ["0002", "short", "completed", "12ms"]


def test_a_table_that_fits_and_one_without_a_width_are_whole() -> None:
    whole = table_lines(HEADERS, ROWS, right={3}, shrink=1, width=None)
    assert LONG in whole[1]
    assert table_lines(HEADERS, ROWS, right={3}, shrink=1, width=200) == whole


def test_a_terminal_too_narrow_for_the_other_columns_still_gets_no_wrapped_line() -> None:
    lines = table_lines(HEADERS, ROWS, right={3}, shrink=1, width=12)
    assert [len(line) <= 12 for line in lines] == [True] * 3
    assert all(line.endswith("\u2026") for line in lines[1:])


def test_the_width_is_the_terminals_or_none_for_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "33")
    assert terminal_width() == 33
    monkeypatch.delenv("COLUMNS")
    if not sys.stdout.isatty():
        assert terminal_width() is None
