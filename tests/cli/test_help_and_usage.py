"""``--help`` names every default; bad usage is one line and exit 2 (no server needed)."""

from __future__ import annotations

import argparse

import pytest

from transport.cli import _parser, main


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = _parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_help_shows_every_option_with_its_default(command: str) -> None:
    sub = _subparser(command)
    formatter = sub._get_formatter()
    options = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= (20 if command == "serve" else 3)
    for action in options:
        text = formatter._expand_help(action)
        assert "default" in text, (action.option_strings, text)
        if action.default not in (None, False):
            assert f"{action.default}" in text or "the default" in text, text


def test_serve_help_prints_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in (
        "(default: 256)",
        "(default: no metrics)",
        "(default: off)",
        "(default: info)",
    ):
        assert expected in text


@pytest.mark.parametrize(
    "value", ["localhost:abc", "localhost", "localhost:70000", "localhost:-1", "[::1]:"]
)
def test_a_malformed_metrics_address_is_a_one_line_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--metrics", value])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "--metrics" in err and "HOST:PORT" in err and repr(value) in err


def test_every_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["ls", "--bogus"], ["cancel"], ["terminate"], []):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--help" in err, err
