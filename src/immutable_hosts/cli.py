"""``immutable-hosts``: the command line of the immutable.hosts collection."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from immutable_hosts import __version__, adopt, drift, image
from immutable_hosts.lab import cli as lab_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="immutable-hosts",
        description="Provision immutable Linux hosts with the immutable.hosts Ansible collection.",
    )
    parser.add_argument("--version", action="version", version="immutable-hosts %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    lab_cli.register(commands)
    drift.register(commands)
    adopt.register(commands)
    image.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
