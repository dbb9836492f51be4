"""``immutable-hosts lab …``: bring lab hosts up and down, inspect them, run commands and simulator actions, each
command one call of the :class:`~immutable_hosts.lab.api.Lab` API.

``register(subparsers)`` adds the ``lab`` command to the main CLI; every leaf parser sets ``func(args) -> int``.
The module also runs on its own: ``python -m immutable_hosts.lab.cli up --hosts 2``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from immutable_hosts._parser import Parser
from immutable_hosts.lab.api import PREFIX_RE, SIM_ACTIONS, Lab, LabError
from immutable_hosts.lab.network import MAX_HOSTS
from immutable_hosts.lab.server import SERVER_PORT
from immutable_hosts.lab.state import PROFILES


def console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def progress() -> Iterator[Callable[[str], Callable[[str], None]]]:
    """Yields ``phase(title) -> report(message)``; each phase is one line of a rich progress display."""
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console(), transient=False
    ) as bar:
        current: list[TaskID] = []

        def phase(title: str) -> Callable[[str], None]:
            if current:
                bar.update(current[-1], completed=1, total=1)
            task = bar.add_task(title, total=None)
            current.append(task)
            return lambda message: bar.update(task, description=f"{title}: {message}")

        yield phase
        if current:
            bar.update(current[-1], completed=1, total=1)


def handled(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose LabError is its message and exit status 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except LabError as exc:
            raise SystemExit(str(exc)) from None

    return run


def open_lab(args: argparse.Namespace, phase: Callable[[str], Callable[[str], None]] | None = None) -> Lab:
    return Lab(getattr(args, "state_dir", None), progress=phase)


# --- commands: each one call of the Lab API ---------------------------------------------------------------


@handled
def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with progress() as phase:
        lab = open_lab(args, phase)
        names = lab.up(hosts=args.hosts, profile=args.profile, name=args.name, first=args.first)
    degraded = sorted(n for n, s in lab.boot_states.items() if s != "running")
    console().print(
        f"lab: {len(names)} host(s) up in {time.monotonic() - started:.1f}s (image {lab.image_seconds:.1f}s)"
        + (f" (degraded: {', '.join(degraded)})" if degraded else "")
    )
    print(lab.inventory)
    return 0


@handled
def cmd_down(args: argparse.Namespace) -> int:
    count = open_lab(args).down(purge=args.purge)
    console().print(f"lab: {count} host(s) down" + (", state removed" if args.purge else ""))
    return 0


@handled
def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    status = open_lab(args).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    table = Table("host", "profile", "address", "state", "boots", title=f"lab {status['state_dir']}")
    for row in status["hosts"]:
        table.add_row(row["name"], row["profile"], row["address"], row["state"], str(row["boots"]))
    out = console()
    out.print(table)
    out.print(f"image server: {'listening' if status['server'] else 'stopped'} (port {SERVER_PORT})")
    reg = status["registry"]
    out.print(f"registry: {'serving' if reg['running'] else 'stopped'} ({', '.join(reg['names'])}; CA {reg['ca']})")
    return 0


@handled
def cmd_inventory(args: argparse.Namespace) -> int:
    print(open_lab(args).inventory)
    return 0


@handled
def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("lab exec: give a command after --")
    return open_lab(args).exec(args.host, command, user=args.user, capture=False).returncode


@handled
def cmd_sim(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    lab = open_lab(args)
    if words[:1] == ["publish"]:
        if len(words) != 2:
            raise SystemExit("usage: lab sim publish REF|IMAGE")
        result = lab.publish(words[1])
        print(json.dumps(result, indent=2) if isinstance(result, dict) else result)
        return 0
    if len(words) >= 2 and words[0] in SIM_ACTIONS and words[1] not in SIM_ACTIONS:
        words = [words[1], words[0], *words[2:]]  # accept `sim ACTION HOST …` as well as `sim HOST ACTION …`
    if len(words) < 2 or words[1] not in SIM_ACTIONS:
        raise SystemExit(f"usage: lab sim HOST {{{','.join(SIM_ACTIONS)}}} ARGS… | lab sim publish REF|IMAGE")
    return lab.sim(words[0], words[1], *words[2:], capture=False).returncode


# --- argparse ------------------------------------------------------------------------------------------


def host_prefix(value: str) -> str:
    if not PREFIX_RE.match(value) or value.endswith("-"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a host name prefix: lower-case letters, digits and '-', starting with a letter, "
            "at most 30 characters (it becomes a directory and a host name)"
        )
    return value


def host_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of hosts") from None
    if not 1 <= count <= MAX_HOSTS:
        raise argparse.ArgumentTypeError(f"--hosts is between 1 and {MAX_HOSTS}, not {count}")
    return count


def host_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a host number") from None
    if not 1 <= number <= MAX_HOSTS:
        raise argparse.ArgumentTypeError(f"--first is between 1 and {MAX_HOSTS}, not {number}")
    return number


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not overwrite `lab --state-dir X sub`.
    parser.add_argument(
        "--state-dir", default=argparse.SUPPRESS, help="lab state directory (default: $IMMUTABLE_HOSTS_LAB_DIR or <repo>/.lab)"
    )


def register(subparsers: Any) -> argparse.ArgumentParser:
    lab = subparsers.add_parser("lab", help="simulated immutable hosts for tests")
    add_state_dir(lab)
    lab.set_defaults(func=lambda _args: (lab.print_help(), 1)[1])
    commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND")

    up = commands.add_parser("up", help="boot hosts (idempotent) and write the inventory")
    up.add_argument("--hosts", type=host_count, default=1, metavar="N", help="number of hosts with this prefix")
    up.add_argument("--profile", choices=PROFILES, default="silverblue")
    up.add_argument("--name", metavar="PREFIX", type=host_prefix, help="host name prefix (default: the profile)")
    up.add_argument("--first", type=host_number, default=1, metavar="N", help="number of the first host (default: 1)")
    add_state_dir(up)
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop every host and remove what the lab set up")
    down.add_argument("--purge", action="store_true", help="also remove the image cache, keys and server content")
    add_state_dir(down)
    down.set_defaults(func=cmd_down)

    status = commands.add_parser("status", help="list hosts and their states")
    status.add_argument("--json", action="store_true")
    add_state_dir(status)
    status.set_defaults(func=cmd_status)

    inv = commands.add_parser("inventory", help="print the inventory path")
    add_state_dir(inv)
    inv.set_defaults(func=cmd_inventory)

    exe = commands.add_parser("exec", help="run a command on a host over SSH")
    exe.add_argument("--user", default="root", choices=("root", "core"))
    add_state_dir(exe)
    exe.add_argument("host")
    exe.add_argument("command", nargs=argparse.REMAINDER)
    exe.set_defaults(func=cmd_exec)

    sim = commands.add_parser(
        "sim",
        help="simulator actions",
        description="lab sim HOST busy SECONDS [TITLE] | lab sim HOST driver NAME | "
        "lab sim HOST lock-finalization | lab sim publish REF|IMAGE",
    )
    add_state_dir(sim)
    sim.add_argument("words", nargs=argparse.REMAINDER)
    sim.set_defaults(func=cmd_sim)
    return lab


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="immutable-hosts")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
