"""The ``opsreg`` command. The only module that writes to the terminal."""

from __future__ import annotations

import argparse
import sys


def _example(_: argparse.Namespace) -> int:
    from transport.example import run_example

    run_example(print)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opsreg", description="operation-lifecycle registry")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("example", help="run a short in-process example and print the feed")
    ex.set_defaults(func=_example)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
