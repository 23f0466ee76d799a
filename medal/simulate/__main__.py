"""`python -m medal.simulate ...`: the simulate sub-command without the main medal CLI."""

from __future__ import annotations

import argparse
import sys

from medal.simulate.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medal")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
