"""``immutable-hosts``: the command line of the immutable.hosts collection."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from immutable_hosts import __version__
from immutable_hosts._parser import USAGE_ERROR, Parser

# The commands, in the order help lists them; lab last: a development tool, not what a user of the collection needs.
COMMANDS = {
    "drift": "immutable_hosts.drift",
    "adopt": "immutable_hosts.adopt",
    "image": "immutable_hosts.image",
    "status": "immutable_hosts.status",
    "collector": "immutable_hosts.collector",
    "lab": "immutable_hosts.lab.cli",
}
# status reads a fleet in a second or two, and every tenth of a second before it starts ansible-inventory counts: it
# builds only its own parser, without importing the other commands (the lab's modules alone take 0.1 s).
FAST = ("status",)


def build_parser(commands: Sequence[str] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    parser = Parser(
        prog="immutable-hosts",
        description="Provision immutable Linux hosts with the immutable.hosts Ansible collection.",
        epilog="Exit codes: 0 success, 1 an error (a usage error too), 2 drift or, with --check, a change to make, "
        "3 (status) some host unreachable or not read.",
    )
    parser.add_argument("--version", action="version", version="immutable-hosts %s" % __version__)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands:
        importlib.import_module(COMMANDS[name]).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[:1] if argv[:1] and argv[0] in FAST else tuple(COMMANDS))
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
