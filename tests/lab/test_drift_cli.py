"""``immutable-hosts drift`` and ``immutable-hosts adopt`` against lab hosts, and drift.html in headless Chromium.

Two silverblue hosts in a lab of their own (a temp state dir sharing the default lab's image cache, as
test_smoke.py does), so the session's hosts are neither needed nor touched. The hosts are converged to a small
desired state with our modules (data/drift/site.yml); `drift` then exits 0. Drift is injected the way a person
would: a package layered by hand on one host, the Flatpak remote disabled on the other; `drift` exits 2 and its
reports name each host with its drifted resource, also in the DOM Chromium renders from drift.html. `adopt` writes
the drifted host's state (tmux included) into a host_vars file. The lab goes down at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SRC, state_dir_of_its_own
from harness import Lab

from immutable_hosts.lab.api import Lab as LabAPI

pytestmark = pytest.mark.lab

DATA = Path(__file__).resolve().parent / "data" / "drift"
PLAYBOOK = DATA / "site.yml"
HOSTS = ["drift-1", "drift-2"]


@pytest.fixture(scope="module")
def drift_lab(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path) -> Iterator[Path]:
    state_dir = state_dir_of_its_own(tmp_path_factory, lab_state_dir, "lab-drift")
    try:
        LabAPI(state_dir).up(hosts=len(HOSTS), profile="silverblue", name="drift")
        yield state_dir
    finally:
        LabAPI(state_dir).down()


def immutable_hosts(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    env["COLUMNS"] = "200"
    argv = [sys.executable, "-m", "immutable_hosts.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def drift(state_dir: Path, report_dir: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    done = immutable_hosts(
        "drift", "-i", str(state_dir / "inventory.yml"), "--playbook", str(PLAYBOOK), "--report-dir", str(report_dir)
    )
    report = report_dir / "drift.json"
    assert report.exists(), f"rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done, json.loads(report.read_text())


def exec_on(state_dir: Path, host: str, *command: str) -> str:
    return LabAPI(state_dir).exec(host, list(command), check=True).stdout


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_dom(html_file: Path, profile_dir: Path) -> str:
    argv = [
        chromium() or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        "--dump-dom",
        html_file.resolve().as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


def test_drift_report_exit_codes_browser_and_adopt(drift_lab: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    ansible = Lab(drift_lab / "inventory.yml")
    converge = ansible.playbook(PLAYBOOK, hosts=HOSTS)
    assert converge.ok, converge.explain()
    assert converge.changed(), "the first converge changed nothing: the test state is not a change from a fresh host"

    # converged: no drift, exit 0, every host in sync
    done, report = drift(drift_lab, tmp_path / "clean")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{json.dumps(report, indent=1)}"
    assert {name: host["status"] for name, host in report["hosts"].items()} == dict.fromkeys(HOSTS, "in_sync")
    assert report["check_mode"] is True and report["summary"]["changes"] == 0

    # drift by hand: a package layered on drift-1, the Flatpak remote disabled on drift-2
    exec_on(drift_lab, "drift-1", "rpm-ostree", "install", "tmux")
    exec_on(drift_lab, "drift-2", "flatpak", "remote-modify", "--system", "--disable", "flathub")

    report_dir = tmp_path / "drifted"
    done, report = drift(drift_lab, report_dir)
    assert done.returncode == 2, f"{done.stdout}\n{done.stderr}"
    hosts = report["hosts"]
    assert hosts["drift-1"]["status"] == "drifted" and hosts["drift-2"]["status"] == "drifted"
    changes = json.dumps({name: host["changes"] for name, host in hosts.items()}, indent=1)
    assert [c["resource"] for c in hosts["drift-1"]["changes"]] == ["layered packages"], changes
    assert [c["resource"] for c in hosts["drift-2"]["changes"]] == ["flatpak_remote flathub"], changes
    packages = hosts["drift-1"]["changes"][0]["diff"][0]
    assert "tmux" in packages["before"]["requested_packages"]
    assert "tmux" not in packages["after"]["requested_packages"]
    remote = hosts["drift-2"]["changes"][0]["diff"][0]
    assert remote["before"]["enabled"] is False and remote["after"]["enabled"] is True
    # the summary table names both hosts; the Markdown names hosts and resources
    assert "drift-1" in done.stdout and "drift-2" in done.stdout and "drifted" in done.stdout
    markdown = (report_dir / "drift.md").read_text()
    # Host data is escaped in Markdown (an underscore would start emphasis): flatpak\_remote renders as flatpak_remote.
    assert "## drift-1: drifted" in markdown and "layered packages" in markdown and "flatpak\\_remote flathub" in markdown
    assert '+  "enabled": true' in markdown or '+  "enabled": true,' in markdown

    # drift.html as a browser renders it: hosts, the matrix cells and the expandable diffs
    if chromium() is None:
        pytest.fail("chromium is not installed (apt-get install chromium): the browser test cannot run")
    dom = rendered_dom(report_dir / "drift.html", tmp_path / "chromium-profile")
    for host in HOSTS:
        assert f'data-host="{host}"' in dom and f'id="d-{host}"' in dom
    assert 'data-resource="layered packages"' in dom and 'data-resource="flatpak_remote flathub"' in dom
    assert '<details id="d-drift-1-layered-packages"' in dom and "tmux" in dom
    assert '<details id="d-drift-2-flatpak-remote-flathub"' in dom
    assert "http://" not in dom.replace("http://images.lab", "")  # self-contained: no external assets

    # adopt: the drifted host's observed state into a host_vars file, comments kept
    host_vars = tmp_path / "host_vars" / "drift-1.yml"
    host_vars.parent.mkdir()
    host_vars.write_text("# drift-1: the lab's first drift host\nowner: ops  # who to call\nos_image_packages:\n  - htop\n")
    done = immutable_hosts("adopt", "-i", str(drift_lab / "inventory.yml"), "drift-1", "--yes", "--host-vars", str(host_vars))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    text = host_vars.read_text()
    assert text.startswith("# drift-1: the lab's first drift host\nowner: ops  # who to call\n"), text
    from ruamel.yaml import YAML

    assert "os_image_ref: !unsafe fedora:fedora/41/x86_64/silverblue\n" in text  # host data is never templated
    yaml = YAML(typ="safe")
    yaml.constructor.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    adopted = yaml.load(text)
    assert adopted["os_image_ref"] == "fedora:fedora/41/x86_64/silverblue"
    assert adopted["os_image_packages"] == ["htop", "tmux"]
    assert "rw" in adopted["os_image_kargs"]
    assert not any(arg.startswith("ostree=") for arg in adopted["os_image_kargs"])
    assert {"name": "org.example.Editor", "remote": "flathub"} in adopted["flatpak_apps"]
    assert adopted["flatpak_overrides"] == []
    print(f"drift lab test: {time.monotonic() - started:.1f}s after lab up")
