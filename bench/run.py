"""Fleet benchmark: immutable.hosts roles (ours.yml) against the usual community collections (anchor.yml).

Brings up a lab of its own with two fleets of fresh Silverblue 41 hosts (``ours-1..N`` and ``anchor-1..N``, so each
side converges fresh hosts), installs bench-only exec counters on the hosts (``/usr/local/bin`` wrappers that log
argv to ``/var/lib/bench-exec.log`` and exec the real ``/usr/bin`` tool), then times, in alternating order:
(a) converge from fresh hosts (1 run per side), (b) ``--check --diff`` on the converged fleets, (c) ``--check --diff``
after the same drift was injected on both fleets, and the floor (``ansible -m ping``) on the same fleets.
Writes bench/results/results.json, results.md and time_vs_hosts.png. The lab is taken down at the end.

    .venv/bin/python bench/run.py [--hosts 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PROJECT_BIN = REPO / ".venv" / "bin"
sys.path.insert(0, str(REPO / "src"))  # the lab's API
ANCHOR_VENV = BENCH / ".venv-anchor"
ANCHOR_BIN = ANCHOR_VENV / "bin"
TOOLS = ("rpm-ostree", "flatpak", "podman", "systemctl")
EXEC_LOG = "/var/lib/bench-exec.log"
SIDES = ("ours", "anchor")
PLAYS = {"ours": 1, "anchor": 2}

# rpm-ostree subcommands that start a transaction (a new deployment or a daemon-side change); reads are the rest.
MUTATING = {
    "rebase",
    "install",
    "uninstall",
    "override",
    "upgrade",
    "update",
    "deploy",
    "reset",
    "rollback",
    "initramfs",
    "apply-live",
    "cleanup",
    "refresh-md",
}
KARGS_WRITE = ("--append", "--delete", "--replace", "--append-if-missing", "--delete-if-present")

# The drift injected on every host of both fleets, and how each side's check run must report it. Ours: a change in
# the run's drift report (the immutable.hosts.drift callback) by the module that manages the thing, whose resource or
# diff names it (several calls share one batch task, so the task name alone would not tell). Anchor: a changed task
# whose name starts with the given text.
DRIFT = [
    {
        "name": "extra layered package (cowsay)",
        "command": "rpm-ostree install -q cowsay >/dev/null",
        "ours": {"action": "immutable.hosts.rpm_ostree_packages", "needle": "cowsay"},
        "anchor": "Layer packages",
    },
    {
        "name": "removed Flatpak (org.example.Viewer)",
        "command": "flatpak uninstall -y --system --noninteractive org.example.Viewer >/dev/null",
        "ours": {"action": "immutable.hosts.flatpak", "needle": "org.example.Viewer"},
        "anchor": "Flatpaks",
    },
    {
        "name": "changed Flatpak override (Editor gets home)",
        "command": "flatpak override --system --filesystem=home org.example.Editor",
        "ours": {"action": "immutable.hosts.flatpak_override", "needle": "org.example.Editor"},
        "anchor": "Flatpak overrides",
    },
    {
        "name": "edited Quadlet unit (bench-a)",
        "command": "sed -i 's/sleep 60/sleep 61/' /home/core/.config/containers/systemd/bench-a.container",
        "ours": {"action": "immutable.hosts.quadlet", "needle": "bench-a"},
        "anchor": "Quadlet units",
    },
]

WRAPPER = """#!/bin/sh
printf '%s\\t%s\\n' "$(basename "$0")" "$*" >> {log} 2>/dev/null
exec /usr/bin/$(basename "$0") "$@"
"""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Lab:
    """The bench's own lab, through the lab's Python API."""

    def __init__(self, state: Path) -> None:
        from immutable_hosts.lab.api import Lab as LabAPI

        self.state = state
        self.api = LabAPI(state)

    def sh(self, host: str, script: str, check: bool = True) -> str:
        return self.api.exec(host, ["sh", "-c", script], check=check).stdout

    def on_all(self, hosts: list[str], script: str) -> dict[str, str]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            outs = pool.map(lambda h: self.sh(h, script), hosts)
            return dict(zip(hosts, outs, strict=True))

    def boots(self) -> dict[str, int]:
        return {h["name"]: h["boots"] for h in self.api.status()["hosts"]}


def ensure_anchor_venv() -> str:
    if not (ANCHOR_BIN / "ansible-playbook").exists():
        log("building the anchor venv (python3.11, ansible>=12,<13, ansible-core 2.19, matplotlib)")
        py = shutil.which("python3.11") or sys.executable
        subprocess.run([py, "-m", "venv", str(ANCHOR_VENV)], check=True)
        pip = [str(ANCHOR_BIN / "pip"), "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "ansible>=12,<13", "ansible-core>=2.19,<2.20", "matplotlib"], check=True)
    return version(ANCHOR_BIN)


def version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "ansible"), "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "?"


def collections(bindir: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(bindir / "ansible-galaxy"), "collection", "list", "--format", "json"], capture_output=True, text=True
    ).stdout
    found: dict[str, str] = {}
    try:
        for colls in json.loads(out).values():
            for name, info in colls.items():
                if name in ("community.general", "containers.podman"):
                    found.setdefault(name, info.get("version", "?"))
    except json.JSONDecodeError:
        pass
    return found


def ansible_env(side: str, tree: Path, cfg: Path) -> dict[str, str]:
    bindir = PROJECT_BIN if side in ("ours", "floor") else ANCHOR_BIN
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        PATH=f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}",
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_COLLECTIONS_PATH=str(tree) if side in ("ours", "floor") else str(cfg.parent / "empty"),
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def parse_play(out: str) -> dict:
    """Changed hosts per task, failures and recap from the default callback's output."""
    changed: dict[str, set[str]] = {}
    task = ""
    failed = 0
    for line in out.splitlines():
        m = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \*+", line)
        if m:
            task = m.group(1).split(" : ", 1)[-1]
            continue
        m = re.match(r"^changed: \[([^\]]+)\]", line)
        if m:
            changed.setdefault(task, set()).add(m.group(1))
        if line.startswith(("fatal:", "failed:")):
            failed += 1
    recap = {}
    for m in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out, re.M):
        recap[m.group(1)] = {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
    return {"changed": {k: sorted(v) for k, v in changed.items()}, "failed_lines": failed, "recap": recap}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n = args.hosts
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-", dir=args.tmp_dir))
        self.lab = Lab(self.tmp / "lab")
        self.tree = self.tmp / "tree"
        self.cfg = self.tmp / "ansible.cfg"
        self.fleet = {s: [f"{s}-{i}" for i in range(1, self.n + 1)] for s in SIDES}
        self.logs = RESULTS / "logs" / f"hosts-{self.n}"

    # --- set-up ---------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.lab.state.mkdir(parents=True)
        image = REPO / ".lab" / "image"
        if image.is_dir():
            (self.lab.state / "image").symlink_to(image)
        subprocess.run([str(PROJECT_BIN / "python"), str(REPO / "tools" / "collection_tree.py"), str(self.tree)], check=True)
        (self.tmp / "empty").mkdir()
        self.cfg.write_text(
            f"[defaults]\nforks = {max(self.n, 5)}\nretry_files_enabled = false\ninterpreter_python = auto_silent\n"
        )
        self.logs.mkdir(parents=True, exist_ok=True)
        for side in SIDES:
            log(f"lab up: {self.n} silverblue hosts for {side}")
            started = time.monotonic()
            self.lab.api.up(hosts=self.n, profile="silverblue", name=side)
            log(f"  up in {time.monotonic() - started:.1f}s")
        self.inventory = str(self.lab.api.inventory)
        script = "; ".join(
            f"printf %s {shlex_quote(WRAPPER.format(log=EXEC_LOG))} > /usr/local/bin/{t}; chmod 755 /usr/local/bin/{t}"
            for t in TOOLS
        )
        script += f"; : > {EXEC_LOG}; chmod 666 {EXEC_LOG}"
        self.lab.on_all(self.fleet["ours"] + self.fleet["anchor"], script)

    # --- measuring ------------------------------------------------------------------------------------------------
    def reset_counts(self, hosts: list[str]) -> None:
        self.lab.on_all(hosts, f": > {EXEC_LOG}")

    def read_counts(self, hosts: list[str]) -> dict:
        logs = self.lab.on_all(hosts, f"cat {EXEC_LOG}")
        per_host = {}
        for host, text in logs.items():
            counts = dict.fromkeys(TOOLS, 0)
            transactions = 0
            calls = []
            for line in text.splitlines():
                tool, _, argv = line.partition("\t")
                if tool not in counts:
                    continue
                counts[tool] += 1
                calls.append(f"{tool} {argv}")
                words = argv.split()
                sub = next((w for w in words if not w.startswith("-")), "")
                if tool == "rpm-ostree" and (
                    (sub in MUTATING and not {"--check", "--preview", "--dry-run"} & set(words))
                    or (sub == "kargs" and any(w.startswith(KARGS_WRITE) for w in words))
                ):
                    transactions += 1
            per_host[host] = {"calls": counts, "rpm_ostree_transactions": transactions, "argv": calls}
        mean = {t: statistics.mean(h["calls"][t] for h in per_host.values()) for t in TOOLS}
        return {
            "per_host_mean": mean,
            "rpm_ostree_transactions_per_host_max": max(h["rpm_ostree_transactions"] for h in per_host.values()),
            "rpm_ostree_transactions_per_host_mean": statistics.mean(h["rpm_ostree_transactions"] for h in per_host.values()),
            "example_host": {"host": hosts[0], **per_host[hosts[0]]},
        }

    def run(self, side: str, label: str, check: bool) -> dict:
        if side.startswith("floor_"):
            target = side.split("_", 1)[1]
            argv = ["ansible", "-i", self.inventory, "all", "--limit", f"{target}-*", "-m", "ansible.builtin.ping"]
            env = ansible_env("floor", self.tree, self.cfg)
        else:
            playbook = BENCH / f"{side}.yml"
            argv = ["ansible-playbook", "-i", self.inventory, "--limit", f"{side}-*", str(playbook)]
            if check:
                argv += ["--check", "--diff"]
            env = ansible_env(side, self.tree, self.cfg)
            if side == "ours" and check:
                # The fleet drift report users get from `immutable-hosts drift`: it costs ours time, not the anchor's.
                env["ANSIBLE_CALLBACKS_ENABLED"] = "immutable.hosts.drift"
                env["IMMUTABLE_HOSTS_DRIFT_REPORT"] = str(self.logs / f"{label}-{side}-drift.json")
        started = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=BENCH)
        wall = time.monotonic() - started
        (self.logs / f"{label}-{side}.log").write_text(done.stdout + done.stderr)
        parsed = parse_play(done.stdout)
        ok = done.returncode == 0
        log(f"  {label} {side}: {wall:.1f}s rc={done.returncode}")
        if not ok and not side.startswith("floor"):
            log(f"    failed: see {self.logs / f'{label}-{side}.log'}")
        result = {"wall_s": round(wall, 2), "rc": done.returncode, **parsed}
        report = self.logs / f"{label}-{side}-drift.json"
        if side == "ours" and check and report.is_file():
            result["drift_report"] = json.loads(report.read_text())
        return result

    def floor(self, label: str) -> float:
        runs = [self.run(f"floor_{s}", label, check=False)["wall_s"] for s in SIDES]
        return statistics.mean(runs)

    # --- scenarios ------------------------------------------------------------------------------------------------
    def scenario_a(self) -> dict:
        out: dict = {"floor_s": self.floor("a-floor")}
        order = SIDES if self.args.hosts % 2 == 0 else tuple(reversed(SIDES))
        for side in order:
            hosts = self.fleet[side]
            self.reset_counts(hosts)
            before = self.lab.boots()
            result = self.run(side, "a-converge", check=False)
            after = self.lab.boots()
            result["reboots_per_host"] = {h: after[h] - before[h] for h in hosts}
            result["counts"] = self.read_counts(hosts)
            out[side] = result
        out["order"] = list(order)
        return out

    def scenario_again(self) -> dict:
        """(a2) the converge playbook once more on the converged fleets (no check mode): what a converged host costs."""
        out: dict = {}
        for side in SIDES:
            hosts = self.fleet[side]
            self.reset_counts(hosts)
            before = self.lab.boots()
            result = self.run(side, "a2-again", check=False)
            result["reboots"] = sum(self.lab.boots()[h] - before[h] for h in hosts)
            result["counts"] = self.read_counts(hosts)
            out[side] = result
        return out

    def scenario_check(self, label: str) -> dict:
        out: dict = {side: {"runs": []} for side in SIDES}
        out["floor_runs"] = []
        for i in range(self.args.runs):
            order = SIDES if i % 2 == 0 else tuple(reversed(SIDES))
            out["floor_runs"].append(self.floor(f"{label}-floor-{i}"))
            for side in order:
                hosts = self.fleet[side]
                self.reset_counts(hosts)
                before = self.lab.boots()
                result = self.run(side, f"{label}-{i}", check=True)
                result["reboots"] = sum(self.lab.boots()[h] - before[h] for h in hosts)
                result["counts"] = self.read_counts(hosts)
                result["order"] = list(order)
                out[side]["runs"].append(result)
        out["floor_median_s"] = statistics.median(out["floor_runs"])
        for side in SIDES:
            out[side]["median_s"] = statistics.median(r["wall_s"] for r in out[side]["runs"])
            out[side]["walls_s"] = [r["wall_s"] for r in out[side]["runs"]]
        return out

    def inject_drift(self) -> dict:
        """The same drift on every host of both fleets; returns the commands that failed, per host."""
        script = "; ".join(f"{d['command']} || echo 'FAILED: {d['name']}'" for d in DRIFT)
        failures = {}
        for side in SIDES:
            for host, out in self.lab.on_all(self.fleet[side], script).items():
                bad = [line for line in out.splitlines() if line.startswith("FAILED:")]
                if bad:
                    failures[host] = bad
        if failures:
            log(f"  drift injection failed on: {failures}")
        return failures

    def detection(self, check: dict) -> dict:
        out = {}
        for side in SIDES:
            first = check[side]["runs"][0]
            rows = []
            for drift in DRIFT:
                if side == "ours":
                    want = drift["ours"]
                    seen = set()
                    for host, report in (first.get("drift_report") or {}).get("hosts", {}).items():
                        for change in report.get("changes", []):
                            text = json.dumps([change.get("resource"), change.get("item"), change.get("diff")])
                            if change.get("action") == want["action"] and want["needle"] in text:
                                seen.add(host)
                    task = f"{want['action']} ({want['needle']})"
                else:
                    name = next((t for t in first["changed"] if t.startswith(drift["anchor"])), None)
                    seen = set(first["changed"].get(name, [])) if name else set()
                    task = name or drift["anchor"]
                rows.append(
                    {
                        "drift": drift["name"],
                        "task": task,
                        "hosts_detected": len(seen & set(self.fleet[side])),
                        "hosts": self.n,
                        "detected": seen >= set(self.fleet[side]),
                    }
                )
            out[side] = rows
        return out

    def main(self) -> dict:
        load = os.getloadavg()
        started = time.monotonic()
        machine = machine_description(load)
        machine["ansible_ours"] = version(PROJECT_BIN)
        machine["ansible_anchor"] = ensure_anchor_venv()
        machine["anchor_collections"] = collections(ANCHOR_BIN)
        log(f"machine: {machine}")
        try:
            self.setup()
            log("scenario (a): converge fresh hosts")
            a = self.scenario_a()
            log("scenario (a2): converge again, on the converged fleets")
            a["again"] = self.scenario_again()
            log("scenario (b): drift check of the converged fleets")
            b = self.scenario_check("b")
            log("scenario (c): inject drift, then drift check")
            injection_failures = self.inject_drift()
            c = self.scenario_check("c")
            c["injection_failures"] = injection_failures
            c["detection"] = self.detection(c)
        finally:
            log("lab down")
            try:
                self.lab.api.down()
                shutil.rmtree(self.tmp, ignore_errors=True)  # the image symlink is removed, not followed
            except Exception as exc:
                log(f"lab down failed ({exc}): the lab state stays in {self.lab.state}")
        return {
            "hosts": self.n,
            "runs": self.args.runs,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine,
            "total_s": round(time.monotonic() - started, 1),
            "drift": [d["name"] for d in DRIFT],
            "a": a,
            "b": b,
            "c": c,
        }


def shlex_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def machine_description(load: tuple[float, float, float]) -> dict:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "loadavg_start": [round(x, 2) for x in load],
    }


# --- output -------------------------------------------------------------------------------------------------------
def status_reads(argv: list[str]) -> dict:
    """State reads in one host's exec log: rpm-ostree status, flatpak remotes and list, systemctl show."""
    reads = {"rpm-ostree status": 0, "flatpak remotes": 0, "flatpak list": 0, "systemctl show": 0}
    for line in argv:
        words = line.split()
        for key in reads:
            tool, sub = key.split()
            if words and words[0] == tool and sub in words[1:5]:
                reads[key] += 1
    return reads


def targets(r: dict) -> list[dict]:
    b, a = r["b"], r["a"]
    ours_b, anchor_b, floor_b = b["ours"]["median_s"], b["anchor"]["median_s"], b["floor_median_s"]
    conv = b["ours"]["runs"][0]["counts"]
    reboots = list(a["ours"]["reboots_per_host"].values())
    tx = a["ours"]["counts"]["rpm_ostree_transactions_per_host_max"]
    ratio = ours_b / anchor_b
    rows = [
        {
            "target": "(b) our time / anchor time <= 0.33",
            "value": f"{ratio:.2f}",
            "met": ratio <= 0.33,
        },
        {
            "target": "(b) our time <= 1.5 x (floor x plays)",
            "value": f"{ours_b:.1f}s vs {1.5 * floor_b * PLAYS['ours']:.1f}s (floor {floor_b:.1f}s x {PLAYS['ours']} play)",
            "met": ours_b <= 1.5 * floor_b * PLAYS["ours"],
        },
        {
            "target": "converged host: no rpm-ostree transaction (ours, check run)",
            "value": f"max {conv['rpm_ostree_transactions_per_host_max']} per host",
            "met": conv["rpm_ostree_transactions_per_host_max"] == 0,
        },
        {
            "target": "(a) 1 reboot per host (ours)",
            "value": f"min {min(reboots)}, max {max(reboots)}",
            "met": set(reboots) == {1},
        },
        {
            "target": "(a) <= 2 rpm-ostree transactions per host (ours)",
            "value": f"max {tx}",
            "met": tx <= 2,
        },
    ]
    again = a.get("again", {}).get("ours")
    if again:
        reads = status_reads(again["counts"]["example_host"]["argv"])
        rows.append(
            {
                "target": "converged host: no rpm-ostree transaction (ours, converge run on a converged fleet)",
                "value": f"max {again['counts']['rpm_ostree_transactions_per_host_max']} per host, {len(again['changed'])} changed tasks",
                "met": again["counts"]["rpm_ostree_transactions_per_host_max"] == 0 and not again["changed"],
            }
        )
        rows.append(
            {
                "target": "converged host: <= 1 status query per tool per module (ours, converge run)",
                "value": ", ".join(f"{k} {v}" for k, v in reads.items()) + f" on {again['counts']['example_host']['host']}",
                "met": reads["rpm-ostree status"] <= 1
                and reads["flatpak remotes"] <= 2
                and reads["flatpak list"] <= 1
                and reads["systemctl show"] <= 2,
            }
        )
    return rows


def fmt_calls(counts: dict) -> str:
    m = counts["per_host_mean"]
    return " / ".join(f"{m[t]:.1f}" for t in TOOLS)


def markdown(results: dict) -> str:
    lines = ["# Fleet benchmark results", ""]
    for key in sorted(results, key=int):
        r = results[key]
        lines += [
            f"## {r['hosts']} hosts per side ({r['date']}, load average at start {r['machine']['loadavg_start']})",
            "",
            "Calls per host are means of rpm-ostree / flatpak / podman / systemctl processes started on the host;",
            "tx = mutating rpm-ostree invocations per host (max).",
            "",
            "| scenario | side | wall time (s) | runs | calls per host | tx | reboots | changed tasks (1st run) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        a = r["a"]
        for side in SIDES:
            s = a[side]
            reb = sorted(set(s["reboots_per_host"].values()))
            nchanged = sum(len(v) for v in s["changed"].values())
            lines.append(
                f"| (a) converge | {side} | {s['wall_s']:.1f} | 1 | {fmt_calls(s['counts'])} | "
                f"{s['counts']['rpm_ostree_transactions_per_host_max']} | {reb} per host | {nchanged} (rc {s['rc']}) |"
            )
        lines.append(f"| (a) floor (ping) | - | {a['floor_s']:.1f} | 1 | - | - | - | - |")
        for side in SIDES:
            s = a.get("again", {}).get(side)
            if s:
                nchanged = sum(len(v) for v in s["changed"].values())
                lines.append(
                    f"| (a2) converge again | {side} | {s['wall_s']:.1f} | 1 | {fmt_calls(s['counts'])} | "
                    f"{s['counts']['rpm_ostree_transactions_per_host_max']} | {s['reboots']} | {nchanged} (rc {s['rc']}) |"
                )
        for name, sc in (("(b) check, converged", r["b"]), ("(c) check, drifted", r["c"])):
            for side in SIDES:
                s = sc[side]
                first = s["runs"][0]
                nchanged = sum(len(v) for v in first["changed"].values())
                lines.append(
                    f"| {name} | {side} | {s['median_s']:.1f} (median of {s['walls_s']}) | {len(s['runs'])} | "
                    f"{fmt_calls(first['counts'])} | {first['counts']['rpm_ostree_transactions_per_host_max']} | "
                    f"{first['reboots']} | {nchanged} (rc {first['rc']}) |"
                )
            lines.append(
                f"| {name} floor (ping) | - | {sc['floor_median_s']:.1f} (median) | {len(sc['floor_runs'])} | - | - | - | - |"
            )
        lines += ["", "Drift detection in (c) (check mode, first run):", "", "| drift | side | task | detected on |"]
        lines.append("|---|---|---|---|")
        for side in SIDES:
            for row in r["c"]["detection"][side]:
                mark = "yes" if row["detected"] else "**missed**"
                lines.append(f"| {row['drift']} | {side} | {row['task']} | {row['hosts_detected']}/{row['hosts']} ({mark}) |")
        lines += ["", "Targets (issue 8):", "", "| target | value | met |", "|---|---|---|"]
        for t in targets(r):
            lines.append(f"| {t['target']} | {t['value']} | {'met' if t['met'] else 'not met'} |")
        lines.append("")
    return "\n".join(lines)


PLOT = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.load(open(sys.argv[1]))["by_hosts"]
xs = sorted(data, key=int)
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, (key, title) in zip(axes, [("a", "(a) converge fresh"), ("b", "(b) check, converged"), ("c", "(c) check, drifted")]):
    for side, style in (("ours", "o-"), ("anchor", "s-")):
        ys = [data[x][key][side]["wall_s"] if key == "a" else data[x][key][side]["median_s"] for x in xs]
        ax.plot([int(x) for x in xs], ys, style, label=side)
    fl = [data[x][key]["floor_s"] if key == "a" else data[x][key]["floor_median_s"] for x in xs]
    ax.plot([int(x) for x in xs], fl, "^--", label="floor (ping)")
    ax.set_title(title); ax.set_xlabel("hosts"); ax.set_ylabel("wall time (s)"); ax.set_ylim(bottom=0)
    ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
"""


def write_outputs(result: dict) -> None:
    path = RESULTS / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    by_hosts = data.get("by_hosts", {})
    by_hosts[str(result["hosts"])] = result
    path.write_text(json.dumps({"by_hosts": by_hosts}, indent=2, sort_keys=True) + "\n")
    (RESULTS / "results.md").write_text(markdown(by_hosts))
    done = subprocess.run(
        [str(ANCHOR_BIN / "python"), "-c", PLOT, str(path), str(RESULTS / "time_vs_hosts.png")],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        log(f"plot failed: {done.stderr[-500:]}")
    log(f"wrote {path}, results.md, time_vs_hosts.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=int(os.environ.get("BENCH_HOSTS", "10")))
    parser.add_argument("--runs", type=int, default=3, help="runs per side for (b) and (c); medians are reported")
    parser.add_argument("--tmp-dir", default=tempfile.gettempdir(), help="where the lab state and collection tree go")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite results.md and the plot from JSON")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.markdown_only:
        data = json.loads((RESULTS / "results.json").read_text())["by_hosts"]
        any_result = data[sorted(data, key=int)[-1]]
        write_outputs(any_result)
        return 0
    if os.geteuid() != 0:
        print("the lab needs root", file=sys.stderr)
        return 2
    Path(args.tmp_dir).mkdir(parents=True, exist_ok=True)
    # Stopping the bench (SIGINT, even when started in the background, or SIGTERM) still takes its lab down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = Bench(args).main()
    write_outputs(result)
    print(markdown({str(result["hosts"]): result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
