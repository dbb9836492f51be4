"""``immutable-hosts status`` beside the ping floor: ``ansible -m ansible.builtin.ping`` and ``immutable-hosts status``
on the same fresh Silverblue lab hosts, alternating, medians. Target: status at most 0.5 x the floor.

For each size given (``--hosts 10 50``) the bench's own lab (a temp state dir sharing the lab image of
``IMMUTABLE_HOSTS_LAB_DIR`` or ``<repo>/.lab``) is brought up to that many hosts, and the bench waits until the hosts'
first-boot work is done (the machine's busy CPU below half a core, at most 3 minutes); one untimed warm-up of each command
(Ansible's ControlPersist masters are then up, as in any later run of the floor), then ``--runs`` rounds, the order of
the two commands alternating. The floor runs with bench/run.py's settings (forks = hosts, no pipelining), status with
its defaults (``--forks 50``), printing its table to a pipe; a run that does not read every host fails the bench. Each
run records the wall time, the CPU of the command's processes and of the rest of the machine (the lab's hosts, from
``/proc/stat``), and the load average when it starts: another agent may be using the machine. One more untimed
``status --json`` gives each host's connect, handshake, auth and command times. Writes bench/results/status.json
(the last run of each size) and appends to bench/results/status-history.jsonl; the lab goes down at the end.

    .venv/bin/python bench/status.py --hosts 10 50 [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the floor's settings (bench/run.py's ansible.cfg and environment); puts src/ on the path
from quick import busy_seconds, children_seconds  # the machine's busy CPU and ours, as bench/quick.py measures them

from immutable_hosts.lab.api import Lab
from immutable_hosts.lab.state import resolve_state_dir

BENCH = bench.BENCH
REPO = bench.REPO
RESULTS = bench.RESULTS
TARGET = 0.5


def log(message: str) -> None:
    print(f"[status bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed(argv: list[str], env: dict[str, str]) -> dict:
    """One run, which must succeed: wall time, CPU of its processes, CPU of the rest of the machine, load at start."""
    load = os.getloadavg()
    busy, mine, started = busy_seconds(), children_seconds(), time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - started
    command_cpu = children_seconds() - mine
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {
        "wall_s": round(wall, 3),
        "command_cpu_s": round(command_cpu, 3),
        "other_cpu_s": round(busy_seconds() - busy - command_cpu, 3),
        "load_at_start": [round(v, 2) for v in load],
    }


def settle(limit: float = 180.0, window: float = 5.0, quiet: float = 0.5) -> float:
    """Wait until freshly booted hosts are done with their first-boot work: the machine's busy CPU over ``window``
    seconds below ``quiet`` cores (or ``limit`` seconds have passed); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = busy_seconds()
        time.sleep(window)
        if (busy_seconds() - before) / window < quiet:
            break
    return time.monotonic() - started


def median(runs: list[dict], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 3)


def phases(document: dict) -> dict:
    """Median and maximum of each host's connect, handshake, auth and command times (seconds)."""
    found: dict[str, list[float]] = {}
    for report in document["hosts"].values():
        for phase, seconds in report["timings"].items():
            found.setdefault(phase, []).append(seconds)
    return {phase: {"median": round(statistics.median(v), 3), "max": round(max(v), 3)} for phase, v in found.items()}


class StatusBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-status-", dir=args.tmp_dir))
        self.lab = Lab(self.tmp / "lab")
        self.cfg = self.tmp / "ansible.cfg"
        self.status_bin = str(bench.PROJECT_BIN / "immutable-hosts")

    def setup(self) -> None:
        image = resolve_state_dir() / "image"
        (self.tmp / "lab").mkdir(parents=True)
        if image.is_dir():
            (self.tmp / "lab" / "image").symlink_to(image)

    def measure(self, hosts: int) -> dict:
        self.cfg.write_text(
            f"[defaults]\nforks = {max(hosts, 5)}\nretry_files_enabled = false\ninterpreter_python = auto_silent\n"
        )
        log(f"lab up: {hosts} silverblue hosts")
        started = time.monotonic()
        self.lab.up(hosts=hosts, profile="silverblue", name="status")
        log(f"  up in {time.monotonic() - started:.1f}s; settled after {settle():.0f}s more (load {os.getloadavg()[0]:.2f})")
        inventory = str(self.lab.inventory)
        env = bench.ansible_env("floor", self.tmp / "no-collections", self.cfg)
        commands = {
            "ping": ["ansible", "-i", inventory, "all", "-m", "ansible.builtin.ping"],
            "status": [self.status_bin, "status", "-i", inventory],
        }
        for name, argv in commands.items():
            timed(argv, env)
            log(f"  warm-up {name} done")
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for number in range(self.args.runs):
            order = list(commands) if number % 2 == 0 else list(reversed(commands))
            for name in order:
                runs[name].append(timed(commands[name], env))
                run = runs[name][-1]
                log(f"  run {number + 1} {name}: {run['wall_s']:.2f}s (load {run['load_at_start'][0]:.2f})")
        detail = subprocess.run([*commands["status"], "--json"], env=env, capture_output=True, text=True, check=True)
        document = json.loads(detail.stdout)
        ping, status = median(runs["ping"], "wall_s"), median(runs["status"], "wall_s")
        result = {
            "hosts": hosts,
            "runs": runs,
            "ping_median_s": ping,
            "status_median_s": status,
            "ratio": round(status / ping, 3),
            "target": TARGET,
            "met": status / ping <= TARGET,
            "status_cpu_median_s": median(runs["status"], "command_cpu_s"),
            "ping_cpu_median_s": median(runs["ping"], "command_cpu_s"),
            "status_other_cpu_median_s": median(runs["status"], "other_cpu_s"),
            "ping_other_cpu_median_s": median(runs["ping"], "other_cpu_s"),
            "status_phases_per_host": phases(document),
        }
        log(f"  {hosts} hosts: ping {ping:.2f}s, status {status:.2f}s, ratio {result['ratio']:.2f} (target {TARGET})")
        return result

    def main(self) -> dict:
        try:
            self.setup()
            results = {str(n): self.measure(n) for n in self.args.hosts}
        finally:
            log("lab down")
            self.lab.down()
        return {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "commit": subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ansible": bench.version(bench.PROJECT_BIN)},
            "by_hosts": results,
        }


def markdown(result: dict) -> str:
    lines = [
        "| hosts | `ansible -m ping` (median) | `immutable-hosts status` (median) | ratio | status CPU: CLI / hosts | ping CPU: ansible / hosts | load at start (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for hosts, r in result["by_hosts"].items():
        loads = ", ".join(f"{run['load_at_start'][0]:.1f}" for name in ("ping", "status") for run in r["runs"][name])
        lines.append(
            f"| {hosts} | {r['ping_median_s']:.2f} s | {r['status_median_s']:.2f} s | **{r['ratio']:.2f}** | "
            f"{r['status_cpu_median_s']:.2f} / {r['status_other_cpu_median_s']:.2f} s | "
            f"{r['ping_cpu_median_s']:.2f} / {r['ping_other_cpu_median_s']:.2f} s | {loads} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[10])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tmp-dir", default=tempfile.gettempdir(), help="where the lab state goes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the lab needs root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still takes the lab down
    result = StatusBench(args).main()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "status.json"
    previous = json.loads(path.read_text()) if path.exists() else {"by_hosts": {}}
    previous["by_hosts"].update({k: dict(v, date=result["date"], commit=result["commit"]) for k, v in result["by_hosts"].items()})
    previous["machine"] = result["machine"]
    path.write_text(json.dumps(previous, indent=1) + "\n")
    with (RESULTS / "status-history.jsonl").open("a") as history:
        history.write(json.dumps(result) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
