"""Fleet benchmark: immutable.hosts roles (ours.yml) against the usual community collections (anchor.yml).

Brings up a lab of its own with two fleets of fresh Silverblue 41 hosts (``ours-1..N`` and ``anchor-1..N``, so each
side converges fresh hosts), installs bench-only exec counters on the hosts (``/usr/local/bin`` wrappers that log
argv to ``/var/lib/bench-exec.log`` and exec the real ``/usr/bin`` tool), then times, in alternating order:
(a) converge from fresh hosts (1 run per side), (a2) the same again, (b) ``--check --diff`` on the converged fleets,
(c) ``--check --diff`` after the same drift was injected on both fleets, and the floor (``ansible -m ping``) on the
same fleets; (b) and (c) also with SSH pipelining on for both sides; then one more check run per side with an
interpreter that records the peak memory of every module process on the hosts.
A failed run is a finding: its log stays in bench/results/logs, and its failed tasks (host, task, message) go into
the results. Writes bench/results/results.json, results.md, history.jsonl (one line per bench run), the tables of
bench/RESULTS.md and time_vs_hosts.png. The lab is taken down at the end.

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

MEMORY_LOG = "/var/lib/bench-memory.log"
# An interpreter for one measuring run: it runs each module process and logs its peak resident set (KiB) and file.
MEMORY_PYTHON = """#!/usr/bin/python3
import resource, subprocess, sys
rc = subprocess.call(["/usr/bin/python3", *sys.argv[1:]])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open("{log}", "a") as log:
    log.write("%d\\t%s\\n" % (peak, " ".join(sys.argv[1:2])))
sys.exit(rc)
"""

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
        """A script on a host; an SSH connection the host's sshd refused (exit 255 before the script ran: OpenSSH 10
        keeps a source that left connections unauthenticated out for at least 15 s, PerSourcePenalties) is tried
        again, up to about half a minute later."""
        for delay in (2, 5, 10, 20, None):
            done = self.api.exec(host, ["sh", "-c", script])
            if done.returncode != 255 or delay is None:
                break
            log(f"    {host}: ssh refused ({done.stderr.strip()[-120:]}), again in {delay}s")
            time.sleep(delay)
        if check and done.returncode != 0:
            raise RuntimeError(f"{host}: {script[:80]} exited {done.returncode}: {done.stderr.strip()[-500:]}")
        return done.stdout

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


def workspace(lab_state: Path, tree: Path, cfg: Path, hosts: int) -> None:
    """What a bench lab runs with: the checkout's lab image (linked, not rebuilt), the collection tree, and the
    ansible.cfg of the bench's settings (forks = hosts), the same for ours, the anchor and the floor."""
    lab_state.mkdir(parents=True, exist_ok=True)
    image = REPO / ".lab" / "image"
    if image.is_dir() and not (lab_state / "image").exists():
        (lab_state / "image").symlink_to(image)
    subprocess.run([str(PROJECT_BIN / "python"), str(REPO / "tools" / "collection_tree.py"), str(tree)], check=True)
    cfg.write_text(f"[defaults]\nforks = {max(hosts, 5)}\nretry_files_enabled = false\ninterpreter_python = auto_silent\n")


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
    failures: list[dict] = []
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
            m = re.match(r"^(?:fatal|failed): \[([^\]]+)\][^{]*(\{.*)?$", line)
            message = ""
            if m and m.group(2):
                with contextlib.suppress(ValueError):
                    message = str(json.loads(m.group(2)).get("msg", ""))[:500]
            failures.append({"host": m.group(1) if m else "?", "task": task, "msg": message})
    recap = {}
    for m in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out, re.M):
        recap[m.group(1)] = {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
    failed_hosts = sorted(h for h, r in recap.items() if r["failed"] or r["unreachable"])
    return {
        "changed": {k: sorted(v) for k, v in changed.items()},
        "failed_lines": failed,
        "failures": failures,
        "failed_hosts": failed_hosts,
        "recap": recap,
    }


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
        workspace(self.lab.state, self.tree, self.cfg, self.n)
        (self.tmp / "empty").mkdir()
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

    def run(self, side: str, label: str, check: bool, pipelining: bool = False, python: str | None = None) -> dict:
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
        if pipelining:
            env["ANSIBLE_PIPELINING"] = "1"
        if python:
            argv += ["-e", f"ansible_python_interpreter={python}"]
        started = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=BENCH)
        wall = time.monotonic() - started
        (self.logs / f"{label}-{side}.log").write_text(done.stdout + done.stderr)
        parsed = parse_play(done.stdout)
        ok = done.returncode == 0
        log(f"  {label} {side}: {wall:.1f}s rc={done.returncode}")
        if not ok:
            # A failed run is a finding: its log is kept (committed with the results), its failed tasks go into them.
            kept = RESULTS / "failures" / f"{time.strftime('%Y%m%dT%H%M%S')}-hosts-{self.n}-{label}-{side}.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.logs / f"{label}-{side}.log", kept)
            parsed["log"] = str(kept.relative_to(BENCH))
            log(f"    failed: see {kept}: {parsed['failures'][:3]}")
        result = {"wall_s": round(wall, 2), "rc": done.returncode, **parsed}
        report = self.logs / f"{label}-{side}-drift.json"
        if side == "ours" and check and report.is_file():
            result["drift_report"] = json.loads(report.read_text())
        return result

    def floor(self, label: str, pipelining: bool = False) -> float:
        runs = [self.run(f"floor_{s}", label, check=False, pipelining=pipelining)["wall_s"] for s in SIDES]
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

    def scenario_check(self, label: str, pipelining: bool = False) -> dict:
        out: dict = {side: {"runs": []} for side in SIDES}
        out["floor_runs"] = []
        out["pipelining"] = pipelining
        for i in range(self.args.runs):
            order = SIDES if i % 2 == 0 else tuple(reversed(SIDES))
            out["floor_runs"].append(self.floor(f"{label}-floor-{i}", pipelining))
            for side in order:
                hosts = self.fleet[side]
                self.reset_counts(hosts)
                before = self.lab.boots()
                result = self.run(side, f"{label}-{i}", check=True, pipelining=pipelining)
                result["reboots"] = sum(self.lab.boots()[h] - before[h] for h in hosts)
                result["counts"] = self.read_counts(hosts)
                result["order"] = list(order)
                out[side]["runs"].append(result)
        out["floor_median_s"] = statistics.median(out["floor_runs"])
        for side in SIDES:
            out[side]["median_s"] = statistics.median(r["wall_s"] for r in out[side]["runs"])
            out[side]["walls_s"] = [r["wall_s"] for r in out[side]["runs"]]
        return out

    def memory(self) -> dict:
        """One check run per side with an interpreter that records each module process's peak memory on the hosts."""
        python = "/usr/local/bin/bench-python"
        script = f"printf %s {shlex_quote(MEMORY_PYTHON.format(log=MEMORY_LOG))} > {python}; chmod 755 {python}"
        self.lab.on_all(self.fleet["ours"] + self.fleet["anchor"], script + f"; : > {MEMORY_LOG}")
        out = {}
        for side in SIDES:
            self.run(side, "m-memory", check=True, python=python)
            peaks: dict[str, list[int]] = {}
            for text in self.lab.on_all(self.fleet[side], f"cat {MEMORY_LOG}").values():
                for line in text.splitlines():
                    kib, _, path = line.partition("\t")
                    module = re.sub(r"^AnsiballZ_|\.py$", "", Path(path).name) or "?"
                    peaks.setdefault(module, []).append(int(kib))
            out[side] = {
                module: {"max_kib": max(values), "median_kib": statistics.median(values), "processes": len(values)}
                for module, values in sorted(peaks.items())
            }
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
            log("scenario (b), SSH pipelining on for both sides")
            b["pipelining"] = self.scenario_check("bp", pipelining=True)
            log("peak memory of the module processes on the hosts (one check run per side)")
            memory = self.memory()
            log("scenario (c): inject drift, then drift check")
            injection_failures = self.inject_drift()
            c = self.scenario_check("c")
            c["injection_failures"] = injection_failures
            c["detection"] = self.detection(c)
            log("scenario (c), SSH pipelining on for both sides")
            c["pipelining"] = self.scenario_check("cp", pipelining=True)
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
            "memory": memory,
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
    """The targets of issue 13, with the value measured."""
    a, b, c = r["a"], r["b"], r["c"]
    ours_b, anchor_b, floor_b = b["ours"]["median_s"], b["anchor"]["median_s"], b["floor_median_s"]
    ours_c, anchor_c = c["ours"]["median_s"], c["anchor"]["median_s"]
    plays = PLAYS["ours"]
    reboots = list(a["ours"]["reboots_per_host"].values())
    tx = a["ours"]["counts"]["rpm_ostree_transactions_per_host_max"]
    rows = [
        {"target": "(b) our time / anchor time <= 0.20", "value": f"{ours_b / anchor_b:.2f}", "met": ours_b / anchor_b <= 0.20},
        {
            "target": "(b) our time <= 2.0 x (floor x plays)",
            "value": f"{ours_b:.1f}s vs {2.0 * floor_b * plays:.1f}s (floor {floor_b:.1f}s x {plays} play): "
            f"{ours_b / (floor_b * plays):.2f} x the floor; 1.5 x would be {1.5 * floor_b * plays:.1f}s",
            "met": ours_b <= 2.0 * floor_b * plays,
        },
        {"target": "(c) our time / anchor time <= 0.33", "value": f"{ours_c / anchor_c:.2f}", "met": ours_c / anchor_c <= 0.33},
        {
            "target": "(a) our time / anchor time <= 0.60",
            "value": f"{a['ours']['wall_s'] / a['anchor']['wall_s']:.2f}",
            "met": a["ours"]["wall_s"] / a["anchor"]["wall_s"] <= 0.60,
        },
        {
            "target": "(a) 1 reboot per host (ours)",
            "value": f"min {min(reboots)}, max {max(reboots)}",
            "met": set(reboots) == {1},
        },
        {"target": "(a) <= 2 rpm-ostree transactions per host (ours)", "value": f"max {tx}", "met": tx <= 2},
        {
            "target": "(a) no failed host (ours)",
            "value": ", ".join(a["ours"]["failed_hosts"]) or "none failed",
            "met": not a["ours"]["failed_hosts"] and a["ours"]["rc"] == 0,
        },
    ]
    again = a.get("again", {}).get("ours")
    if again:
        changed = sum(len(v) for v in again["changed"].values())
        rows.append(
            {
                "target": "(a2) converge again: 0 changed tasks, 0 transactions (ours)",
                "value": f"{changed} changed tasks, max {again['counts']['rpm_ostree_transactions_per_host_max']} transactions",
                "met": changed == 0 and again["counts"]["rpm_ostree_transactions_per_host_max"] == 0,
            }
        )
    conv = b["ours"]["runs"][0]["counts"]
    rows.append(
        {
            "target": "(b) converged host: no rpm-ostree transaction (ours, check run)",
            "value": f"max {conv['rpm_ostree_transactions_per_host_max']} per host",
            "met": conv["rpm_ostree_transactions_per_host_max"] == 0,
        }
    )
    return rows


def failures_of(r: dict) -> list[dict]:
    """Every failed task of every run of a bench, with the run it failed in."""
    runs = [("a-converge", r["a"][s]) for s in SIDES] + [("a2-again", r["a"]["again"][s]) for s in SIDES]
    for key in ("b", "c"):
        for scenario, label in ((r[key], key), (r[key].get("pipelining") or {}, key + "p")):
            for side in SIDES:
                runs += [(f"{label}-{i}", run) for i, run in enumerate(scenario.get(side, {}).get("runs", []))]
    found = []
    for label, run in runs:
        for failure in run.get("failures", []):
            found.append(dict(failure, run=label, log=run.get("log", "")))
    return found


def fmt_calls(counts: dict) -> str:
    m = counts["per_host_mean"]
    return " / ".join(f"{m[t]:.1f}" for t in TOOLS)


def scenario_rows(r: dict) -> list[str]:
    """One row per scenario: both sides, the floor, the ratios, calls and transactions per host, reboots."""
    a = r["a"]
    rows = [
        "| scenario | ours (s) | anchor (s) | floor (s) | ours / anchor | ours / floor | calls per host, ours "
        "(rpm-ostree / flatpak / podman / systemctl) | calls per host, anchor | tx ours / anchor | reboots ours / anchor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, ours: dict, anchor: dict, ours_s: float, anchor_s: float, floor_s, reboots: str) -> str:
        floor = f"{floor_s:.1f}" if floor_s else "-"
        per_floor = f"{ours_s / floor_s:.1f}" if floor_s else "-"
        return (
            f"| {name} | {ours_s:.1f} | {anchor_s:.1f} | {floor} | **{ours_s / anchor_s:.2f}** | {per_floor} | "
            f"{fmt_calls(ours['counts'])} | {fmt_calls(anchor['counts'])} | "
            f"{ours['counts']['rpm_ostree_transactions_per_host_max']} / "
            f"{anchor['counts']['rpm_ostree_transactions_per_host_max']} | {reboots} |"
        )

    reboots = "%s / %s per host" % tuple(sorted(set(a[side]["reboots_per_host"].values())) for side in SIDES)
    rows.append(
        row(
            "(a) converge fresh (1 run)",
            a["ours"],
            a["anchor"],
            a["ours"]["wall_s"],
            a["anchor"]["wall_s"],
            a["floor_s"],
            reboots,
        )
    )
    again = a["again"]
    rows.append(
        row(
            "(a2) converge again (1 run)",
            again["ours"],
            again["anchor"],
            again["ours"]["wall_s"],
            again["anchor"]["wall_s"],
            None,
            f"{again['ours']['reboots']} / {again['anchor']['reboots']}",
        )
    )
    for key, name in (("b", "(b) check, converged"), ("c", "(c) check, drifted")):
        for scenario, suffix in ((r[key], ""), (r[key].get("pipelining"), ", pipelining")):
            if not scenario:
                continue
            ours, anchor = scenario["ours"], scenario["anchor"]
            label = f"{name}{suffix} (median of {len(ours['runs'])}: {ours['walls_s']} / {anchor['walls_s']})"
            first = (ours["runs"][0], anchor["runs"][0])
            reboots = f"{first[0]['reboots']} / {first[1]['reboots']}"
            rows.append(row(label, first[0], first[1], ours["median_s"], anchor["median_s"], scenario["floor_median_s"], reboots))
    return rows


def markdown(results: dict) -> str:
    lines = ["# Fleet benchmark results", ""]
    for key in sorted(results, key=int):
        r = results[key]
        lines += [
            f"## {r['hosts']} hosts per side ({r['date']}, load average at start {r['machine']['loadavg_start']}, "
            f"whole run {r['total_s'] / 60:.0f} min)",
            "",
            "Calls per host: means of rpm-ostree / flatpak / podman / systemctl processes started on a host (first run);",
            "tx: mutating rpm-ostree invocations per host (max). Floor: `ansible -m ping` on the same fleets, same settings.",
            "",
            *scenario_rows(r),
            "",
        ]
        memory = r.get("memory")
        if memory:
            lines += ["Peak memory of the module processes on a host (one check run per side, KiB):", ""]
            lines += ["| side | module | max | median | processes |", "|---|---|---|---|---|"]
            for side in SIDES:
                for module, m in memory[side].items():
                    lines.append(f"| {side} | {module} | {m['max_kib']} | {m['median_kib']:.0f} | {m['processes']} |")
            lines.append("")
        failures = failures_of(r)
        lines += ["Failed tasks (every run of this bench; the logs stay in bench/results):", ""]
        if failures:
            lines += ["| run | host | task | message | log |", "|---|---|---|---|---|"]
            for f in failures:
                message = f["msg"].replace("|", "\\|").replace("\n", " ")[:200]
                lines.append(f"| {f['run']} | {f['host']} | {f['task']} | {message} | {f['log']} |")
        else:
            lines.append("none.")
        lines += ["", "Drift detection in (c) (check mode, first run):", "", "| drift | side | task | detected on |"]
        lines.append("|---|---|---|---|")
        for side in SIDES:
            for row in r["c"]["detection"][side]:
                mark = "yes" if row["detected"] else "**missed**"
                lines.append(f"| {row['drift']} | {side} | {row['task']} | {row['hosts_detected']}/{row['hosts']} ({mark}) |")
        lines += ["", "Targets (issue 13):", "", "| target | value | met |", "|---|---|---|"]
        for t in targets(r):
            lines.append(f"| {t['target']} | {t['value']} | {'met' if t['met'] else '**not met**'} |")
        lines.append("")
    return "\n".join(lines)


def history_rows() -> list[str]:
    """The bench runs so far (history.jsonl), newest last: whether a host failed and the main ratios."""
    path = RESULTS / "history.jsonl"
    if not path.exists():
        return []
    rows = [
        "| date | hosts | failed hosts, (a) ours | (a) ours/anchor | (b) ours/anchor | (b) ours/floor | (c) ours/anchor |",
        "|---|---|---|---|---|---|---|",
    ]
    for line in path.read_text().splitlines():
        h = json.loads(line)
        rows.append(
            f"| {h['date']} | {h['hosts']} | {', '.join(h['failed_hosts_a']) or 'none'} | {h['a_ratio']:.2f} | "
            f"{h['b_ratio']:.2f} | {h['b_floor']:.2f} | {h['c_ratio']:.2f} |"
        )
    return rows


def history_entry(r: dict) -> dict:
    a, b, c = r["a"], r["b"], r["c"]
    return {
        "date": r["date"],
        "hosts": r["hosts"],
        "failed_hosts_a": a["ours"]["failed_hosts"],
        "failures": len(failures_of(r)),
        "a_ratio": a["ours"]["wall_s"] / a["anchor"]["wall_s"],
        "b_ratio": b["ours"]["median_s"] / b["anchor"]["median_s"],
        "b_floor": b["ours"]["median_s"] / (b["floor_median_s"] * PLAYS["ours"]),
        "c_ratio": c["ours"]["median_s"] / c["anchor"]["median_s"],
    }


GENERATED_BEGIN = "<!-- BEGIN GENERATED BY make bench (bench/run.py) -->"
GENERATED_END = "<!-- END GENERATED BY make bench -->"


def update_results_page(by_hosts: dict) -> None:
    """Rewrite the generated part of bench/RESULTS.md: the figures of each size and the history of runs."""
    page = BENCH / "RESULTS.md"
    text = page.read_text() if page.exists() else f"# Fleet benchmark\n\n{GENERATED_BEGIN}\n{GENERATED_END}\n"
    if GENERATED_BEGIN not in text:
        text += f"\n{GENERATED_BEGIN}\n{GENERATED_END}\n"
    body = markdown(by_hosts).split("\n", 2)[2]  # without its title
    history = history_rows()
    if history:
        body += "\n## Every bench run\n\n" + "\n".join(history) + "\n"
    start, end = text.index(GENERATED_BEGIN) + len(GENERATED_BEGIN), text.index(GENERATED_END)
    page.write_text(text[:start] + "\n" + body.replace("## ", "### ") + "\n" + text[end:])


PLOT = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
data = json.load(open(sys.argv[1]))["by_hosts"]
xs = sorted(data, key=int)
# A run that started with a 1-minute load average of half the cores or more shared the machine with other work: its
# points are drawn hollow.
loaded = {x: data[x]["machine"]["loadavg_start"][0] >= data[x]["machine"]["nproc"] / 2 for x in xs}
PANELS = [("a", "(a) converge fresh"), ("a2", "(a2) converge again"), ("b", "(b) check, converged"),
          ("c", "(c) check, drifted")]
def wall(entry, key, side):
    if key == "a":
        return entry["a"][side]["wall_s"]
    if key == "a2":
        return entry["a"]["again"][side]["wall_s"]
    return entry[key][side]["median_s"]
def floor(entry, key):
    return entry["a"].get("floor_s") if key in ("a", "a2") else entry[key].get("floor_median_s")
fig, axes = plt.subplots(1, len(PANELS), figsize=(17, 4.3))
for ax, (key, title) in zip(axes, PANELS):
    for side, marker, color in (("ours", "o", "C0"), ("anchor", "s", "C1"), ("floor", "^", "C2")):
        points = [(int(x), floor(data[x], key) if side == "floor" else wall(data[x], key, side), loaded[x]) for x in xs]
        points = [p for p in points if p[1] is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], "--" if side == "floor" else "-", color=color)
        for x, y, hollow in points:
            ax.plot(x, y, marker, color=color, markerfacecolor="white" if hollow else color, markersize=7)
    ax.set_title(title); ax.set_xlabel("hosts"); ax.set_ylabel("wall time (s)"); ax.set_ylim(bottom=0)
handles = [Line2D([], [], color="C0", marker="o", label="ours"), Line2D([], [], color="C1", marker="s", label="anchor"),
           Line2D([], [], color="C2", marker="^", linestyle="--", label="floor (ping)"),
           Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="none",
                  label="hollow: the run started under load (1-min load average >= half the cores)")]
fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
fig.tight_layout(rect=(0, 0.08, 1, 1))
fig.savefig(sys.argv[2], dpi=110)
"""


def write_outputs(result: dict) -> None:
    path = RESULTS / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    by_hosts = data.get("by_hosts", {})
    by_hosts[str(result["hosts"])] = result
    path.write_text(json.dumps({"by_hosts": by_hosts}, indent=2, sort_keys=True) + "\n")
    (RESULTS / "results.md").write_text(markdown(by_hosts))
    update_results_page(by_hosts)
    done = subprocess.run(
        [str(ANCHOR_BIN / "python"), "-c", PLOT, str(path), str(RESULTS / "time_vs_hosts.png")],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        log(f"plot failed: {done.stderr[-500:]}")
    log(f"wrote {path}, results.md, time_vs_hosts.png")


def check_playbooks() -> None:
    """ours.yml writes the Quadlet units out (as a user would) where anchor.yml loops over desired.yml's names: they
    must be the same units, or the two sides would not converge the same state."""
    import yaml

    desired = yaml.safe_load((BENCH / "desired.yml").read_text())
    ours = yaml.safe_load((BENCH / "ours.yml").read_text())[0]["vars"]
    named = [unit["name"] for unit in ours["rootless_podman_quadlets"]]
    if named != desired["bench_quadlets"]:
        raise SystemExit(f"ours.yml's Quadlet units {named} are not desired.yml's bench_quadlets {desired['bench_quadlets']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=int(os.environ.get("BENCH_HOSTS", "10")))
    parser.add_argument("--runs", type=int, default=3, help="runs per side for (b) and (c); medians are reported")
    parser.add_argument("--tmp-dir", default=tempfile.gettempdir(), help="where the lab state and collection tree go")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite results.md and the plot from JSON")
    args = parser.parse_args()
    check_playbooks()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.markdown_only:
        ensure_anchor_venv()  # the plot's matplotlib
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
    with (RESULTS / "history.jsonl").open("a") as history:
        history.write(json.dumps(history_entry(result)) + "\n")
    write_outputs(result)
    print(markdown({str(result["hosts"]): result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
