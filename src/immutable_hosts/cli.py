"""``immutable-hosts``: the command line of the immutable.hosts collection."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from immutable_hosts import __version__, adopt, drift, image, status
from immutable_hosts._parser import USAGE_ERROR, Parser
from immutable_hosts.lab import cli as lab_cli


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="immutable-hosts",
        description="Provision immutable Linux hosts with the immutable.hosts Ansible collection.",
        epilog="Exit codes: 0 success, 1 an error (a usage error too), 2 drift or, with --check, a change to make, "
        "3 (status) some host unreachable or not read.",
    )
    parser.add_argument("--version", action="version", version="immutable-hosts %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    drift.register(commands)
    adopt.register(commands)
    image.register(commands)
    status.register(commands)
    lab_cli.register(commands)  # last: a development tool, not what a user of the collection needs
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
