"""Fleet report merge benchmark: N synthetic per-host drift reports (one file per host, as pull mode writes them)
merged by ``immutable-hosts drift merge`` into one fleet report; the time and the peak memory of the merge, the HTML's
size, and the time headless Chromium takes to load and lay it out. Target: 10,000 hosts in under 10 s and 500 MB.

    python bench/merge.py --hosts 1000 10000      (results: bench/results/merge.json)

The hosts are the test fixture's kinds (tests/cli/data/drift.json): one in a hundred unreachable, of the others one in
ten drifted with two changes (the fixture's layered packages and file diffs), the rest in sync; in three groups.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "cli" / "data" / "drift.json"
RESULTS = ROOT / "bench" / "results" / "merge.json"


def write_reports(directory: Path, count: int) -> None:
    template = json.loads(FIXTURE.read_text())
    kinds = {
        "unreachable": template["hosts"]["bootc-1"],
        "drifted": template["hosts"]["silverblue-1"],
        "in_sync": {"status": "in_sync", "changes": [], "failures": [], "unreachable": None, "unchecked": [], "stats": {}},
    }
    for index in range(count):
        kind = "unreachable" if index % 100 == 0 else "drifted" if index % 10 == 0 else "in_sync"
        host = copy.deepcopy(kinds[kind])
        host["groups"] = [("laptops", "desktops", "labs")[index % 3]]
        name = f"ws-{index:05d}"
        document = dict(template, generated=f"2026-12-06T{index % 24:02d}:00:00Z", hosts={name: host})
        document["summary"] = {}
        (directory / f"{name}.json").write_text(json.dumps(document))


def chromium_load_seconds(page: Path) -> float | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        argv = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--virtual-time-budget=1000", "--dump-dom", page.as_uri(),
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, timeout=600, check=False)
        elapsed = time.monotonic() - started
    if done.returncode != 0 or b"Fleet drift report" not in done.stdout:
        raise RuntimeError(f"chromium failed (exit {done.returncode}): {done.stderr.decode(errors='replace')[-1000:]}")
    return elapsed


def measure(count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-merge-{count}-") as temp:
        reports, out = Path(temp) / "reports", Path(temp) / "out"
        reports.mkdir()
        write_reports(reports, count)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        # GNU time's %M: the merge's own peak resident set, in KiB (not the other children's of this process).
        argv = ["/usr/bin/time", "-f", "peak-kib %M", sys.executable, "-m", "immutable_hosts.cli", "drift", "merge"]
        argv += [str(reports), "--report-dir", str(out)]
        started = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
        seconds = time.monotonic() - started
        peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("peak-kib ")]
        if done.returncode not in (0, 1, 2) or not (out / "drift.html").exists() or not peaks:
            raise RuntimeError(f"merge failed (exit {done.returncode}): {done.stderr[-2000:]}")
        peak_kib = int(peaks[-1])
        merged = json.loads((out / "drift.json").read_text())
        assert merged["summary"]["hosts"] == count, merged["summary"]
        return {
            "hosts": count,
            "merge_seconds": round(seconds, 2),
            "merge_peak_mib": round(peak_kib / 1024, 1),
            "html_bytes": (out / "drift.html").stat().st_size,
            "md_bytes": (out / "drift.md").stat().st_size,
            "json_bytes": (out / "drift.json").stat().st_size,
            "chromium_load_seconds": chromium_load_seconds(out / "drift.html"),
            "summary": merged["summary"],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    runs = []
    for count in args.hosts:
        result = measure(count)
        runs.append(result)
        print(
            f"{count} hosts: merge {result['merge_seconds']} s, peak {result['merge_peak_mib']} MiB, html "
            f"{result['html_bytes'] / 1e6:.1f} MB, chromium {result['chromium_load_seconds']} s"
        )
    RESULTS.write_text(json.dumps({"runs": runs, "cpus": os.cpu_count()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
