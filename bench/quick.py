"""Quick A/B of the converged drift check (scenario (b) of run.py) against the ping floor, with the CPU by side.

Not the bench: no anchor, no drift, no results written. It answers "did this change make (b) faster?" in minutes,
on N converged lab hosts that stay up between measurements:

    .venv/bin/python bench/quick.py up [--hosts 10]          # a lab of its own, converged once by ours.yml
    .venv/bin/python bench/quick.py measure [--rounds 4] [TREE...]
    .venv/bin/python bench/quick.py down

``measure`` alternates ``ansible -m ping`` and ``ours.yml --check --diff`` (one run per collection tree given, the
checkout's by default; build another with ``tools/collection_tree.py DIR`` to compare a change) and prints medians,
ratios to the floor, and the CPU seconds each run cost on the controller (its children's) and on the rest of the
machine (the lab's hosts and image server, from ``/proc/stat``): the lab's hosts and the controller share the
machine's CPUs, so a run's wall time follows its total CPU time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the bench's own settings and environment

from immutable_hosts.lab.api import Lab

STATE = Path(os.environ.get("IMMUTABLE_HOSTS_QUICK_DIR") or Path(tempfile.gettempdir()) / "immutable-hosts-quick")


def busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list, env: dict) -> tuple:
    """(wall, controller CPU, other CPU) of one run, which must succeed."""
    busy, mine, started = busy_seconds(), children_seconds(), time.monotonic()
    done = subprocess.run(argv, env=env, cwd=bench.BENCH, capture_output=True, text=True)
    wall = time.monotonic() - started
    controller = children_seconds() - mine
    if done.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(argv[:2]), done.returncode, done.stdout[-3000:]))
    return wall, controller, busy_seconds() - busy - controller


def settings() -> tuple:
    """The ansible.cfg, collection tree and inventory that ``up`` made."""
    return STATE / "ansible.cfg", STATE / "tree", str(Lab(STATE / "lab").inventory)


def up(n: int) -> None:
    cfg, tree = STATE / "ansible.cfg", STATE / "tree"
    bench.workspace(STATE / "lab", tree, cfg, n)
    Lab(STATE / "lab").up(hosts=n, profile="silverblue", name="ours")
    inventory = str(Lab(STATE / "lab").inventory)
    wall, _, _ = timed(["ansible-playbook", "-i", inventory, str(bench.BENCH / "ours.yml")], bench.ansible_env("ours", tree, cfg))
    print(f"up: {n} hosts converged by ours.yml in {wall:.1f} s (a real run: the module bytecode cache is warm)")


def measure(rounds: int, trees: list) -> None:
    cfg, default_tree, inventory = settings()
    trees = [Path(t) for t in trees] or [default_tree]
    runs: dict = {"floor": []}
    for tree in trees:
        runs[str(tree)] = []
    for number in range(rounds):
        ping = ["ansible", "-i", inventory, "all", "-m", "ansible.builtin.ping"]
        runs["floor"].append(timed(ping, bench.ansible_env("floor", default_tree, cfg)))
        for tree in trees:
            check = ["ansible-playbook", "-i", inventory, str(bench.BENCH / "ours.yml"), "--check", "--diff"]
            runs[str(tree)].append(timed(check, bench.ansible_env("ours", tree, cfg)))
        print(f"round {number + 1}: " + "  ".join(f"{Path(k).name}={v[-1][0]:.2f}s" for k, v in runs.items()), flush=True)
    floor = statistics.median(r[0] for r in runs["floor"])
    print(f"{'':<40} {'wall s':>7} {'x floor':>8} {'CPU s, controller':>18} {'CPU s, hosts':>13}")
    for name, values in runs.items():
        wall = statistics.median(r[0] for r in values)
        controller = statistics.median(r[1] for r in values)
        hosts = statistics.median(r[2] for r in values)
        print(f"{name[-40:]:<40} {wall:>7.2f} {wall / floor:>8.2f} {controller:>18.2f} {hosts:>13.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up").add_argument("--hosts", type=int, default=10)
    measured = sub.add_parser("measure")
    measured.add_argument("--rounds", type=int, default=4)
    measured.add_argument("trees", nargs="*", help="collection trees to compare (default: the one `up` built)")
    sub.add_parser("down")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the lab needs root", file=sys.stderr)
        return 2
    if args.command == "up":
        up(args.hosts)
    elif args.command == "measure":
        measure(args.rounds, args.trees)
    else:
        Lab(STATE / "lab").down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
