"""Pull mode on a lab host: the host converges itself with ansible-pull from its timer's service, no controller involved.

The lab's image server serves a package index of the machine's ansible-core for the hosts' Python and a Git repository
of the demo's playbook (site.yml, the demo's desired state for every host as the inventory's group_vars, the collection
next to the playbook), each commit signed with the lab's key. The controller runs the pull role once (check mode
first, then twice: the second run changes nothing); from then on the host runs ansible-pull itself. Its first run
converges it to the demo's state; an extra Flatpak installed by hand is removed by the next run, whose report names
that change; every report reaches the collector (`immutable-hosts collector`, run here on the machine-side address of
the host's link), and `immutable-hosts drift merge` makes the fleet report of them. A commit signed by no key the host
trusts is refused.

The tests run in file order and share the host.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import state_dir_of_its_own
from harness import Lab, role_play

from immutable_hosts.lab import pull_content
from immutable_hosts.lab.api import Lab as LabAPI
from immutable_hosts.lab.api import find_host
from immutable_hosts.lab.state import LabState

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
HOST = "pull-1"
SERVICE = "immutable-hosts-pull.service"
REPORTS = "/var/lib/immutable-hosts/reports"
EXTRA_APP = "org.example.Chat"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path) -> Iterator[LabAPI]:
    api = LabAPI(state_dir_of_its_own(tmp_path_factory, lab_state_dir, "lab-pull"))
    try:
        api.up(hosts=1, profile="silverblue", name="pull")
        yield api
    finally:
        api.down()


def repository_tree(root: Path, collections: Path) -> Path:
    """The demo's playbook and desired state as a repository for ansible-pull, with the collection next to them."""
    tree = root / "tree"
    (tree / "inventory").mkdir(parents=True)
    shutil.copyfile(REPO / "playbooks" / "site.yml", tree / "site.yml")
    shutil.copytree(REPO / "tools" / "demo" / "group_vars", tree / "inventory" / "group_vars")
    for profile_vars in ("silverblue.yml", "kinoite.yml", "apple_silicon.yml"):
        (tree / "inventory" / "group_vars" / profile_vars).unlink()  # the OS image stays: a play cannot reboot its own host
    # the apps of the demo's Silverblue group, and no reboot from inside the host (ansible.builtin.reboot cannot)
    (tree / "inventory" / "group_vars" / "pulled.yml").write_text(
        "flatpak_apps:\n  - {name: org.example.Editor, remote: flathub}\n  - {name: org.example.Viewer, remote: flathub}\n"
        "os_image_reboot: never\n"
    )
    (tree / "inventory" / "hosts.yml").write_text(json.dumps({"all": {"children": {"pulled": {"hosts": {HOST: {}}}}}}))
    pull_content.vendor_collection(collections / "ansible_collections" / "immutable" / "hosts", tree)
    return tree


@pytest.fixture(scope="module")
def collector(lab: LabAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """`immutable-hosts collector` on the machine-side address of the host's link, with a token of its own."""
    address = str(find_host(LabState(lab.state_dir), HOST).net.machine_address)
    directory = tmp_path_factory.mktemp("collected")
    token = secrets.token_hex(24)
    token_file = directory.parent / "collector.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    with socket.socket() as probe:
        probe.bind((address, 0))
        port = probe.getsockname()[1]
    log = open(directory.parent / "collector.log", "w")  # noqa: SIM115 - open for the process's lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "immutable_hosts.cli", "collector", "--listen", f"{address}:{port}"]
        + ["--dir", str(directory), "--token-file", str(token_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex((address, port)) == 0:
                    break
            time.sleep(0.2)
        yield {"url": f"http://images.lab:{port}/", "dir": directory, "token": token, "log": directory.parent / "collector.log"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def served(lab: LabAPI, collection_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    index = lab.pull_index()
    repo = lab.pull_repo("fleet", repository_tree(tmp_path_factory.mktemp("pull-repo"), collection_tree), "The demo's fleet")
    return {"index": index, **repo}


@pytest.fixture(scope="module")
def ansible(lab: LabAPI) -> Lab:
    return Lab(lab.state_dir / "inventory.yml")


def task(result, name: str):
    """A task of the role by its own name (results name a role's tasks ``ROLE : NAME``)."""
    found = [r for r in result.results if r.task == name or r.task.endswith(" : " + name)]
    assert len(found) == 1, [r.task for r in result.results]
    return found[0]


def role_vars(served: dict[str, str], collector: dict[str, object], **extra: object) -> dict[str, object]:
    return {
        "pull_repo_url": served["url"],
        "pull_git_keys": [served["key"]],
        "pull_index_url": served["index"],
        "pull_index_allow_insecure": True,
        "pull_requirements": [pull_content.controller_requirement()],
        "pull_collector_url": collector["url"],
        "pull_collector_token": collector["token"],
        **extra,
    }


def sh(lab: LabAPI, *argv: str) -> str:
    return lab.exec(HOST, list(argv), check=True).stdout


def run_service(lab: LabAPI) -> dict[str, object]:
    """Start the service the timer starts and wait for its run to end; the run's last-run.json."""
    done = lab.exec(HOST, ["systemctl", "start", SERVICE])  # a oneshot: returns when the run has ended
    journal = sh(lab, "journalctl", "-u", SERVICE, "-n", "60", "--no-pager", "-o", "cat")
    assert done.returncode == 0, journal
    return json.loads(sh(lab, "cat", "/var/lib/immutable-hosts/pull/last-run.json"))


def report_of(lab: LabAPI, last: dict[str, object]) -> dict[str, object]:
    return json.loads(sh(lab, "cat", str(last["report"])))


def wait_idle(lab: LabAPI) -> None:
    """A run the timer started (its first elapse) is left to finish."""
    deadline = time.monotonic() + 600
    while sh(lab, "systemctl", "show", "-p", "ActiveState", "--value", SERVICE).strip() in ("activating", "deactivating"):
        assert time.monotonic() < deadline, "the pull service is still running after 10 minutes"
        time.sleep(2)


def test_the_role_in_check_mode_changes_nothing(lab: LabAPI, ansible: Lab, served: dict[str, str], collector: dict) -> None:
    result = ansible.playbook_text(role_play(HOST, "immutable.hosts.pull", role_vars(served, collector)), check=True, diff=True)
    assert result.ok, result.explain()
    venv = task(result, "ansible-core in a virtual environment")
    assert venv.changed and venv.result["action"] == "create"
    assert venv.result["diff"]["after"]["packages"] == [pull_content.controller_requirement()]
    assert task(result, "Write the service and its timer").changed
    assert lab.exec(HOST, ["test", "-e", "/var/lib/immutable-hosts/pull"]).returncode == 1
    assert lab.exec(HOST, ["test", "-e", "/etc/systemd/system/immutable-hosts-pull.timer"]).returncode == 1


def test_the_role_installs_pull_mode_and_a_second_run_changes_nothing(
    lab: LabAPI, ansible: Lab, served: dict[str, str], collector: dict
) -> None:
    play = role_play(HOST, "immutable.hosts.pull", role_vars(served, collector))
    first = ansible.playbook_text(play, diff=True)
    assert first.ok, first.explain()
    venv = task(first, "ansible-core in a virtual environment").result
    assert venv["packages"]["ansible-core"] == pull_content.controller_requirement().split("==")[1]
    assert sh(lab, "/var/lib/immutable-hosts/pull/venv/bin/ansible-pull", "--version").startswith("ansible-pull [core ")
    second = ansible.playbook_text(play, diff=True)
    assert second.ok and not second.changed(HOST), second.explain()
    check = ansible.playbook_text(play, check=True, diff=True)
    assert check.ok and not check.changed(HOST), check.explain()
    timer = sh(
        lab, "systemctl", "show", "-p", "ActiveState,UnitFileState,RandomizedDelayUSec,Persistent", "immutable-hosts-pull.timer"
    )
    assert "ActiveState=active" in timer and "UnitFileState=enabled" in timer and "Persistent=yes" in timer
    assert "RandomizedDelayUSec=15min" in timer
    assert sh(lab, "stat", "-c", "%a %U", "/etc/immutable-hosts/pull-collector.token").split() == ["600", "root"]
    assert collector["token"] not in first.stdout + second.stdout


def test_the_host_converges_itself_and_reports_to_the_collector(lab: LabAPI, collector: dict) -> None:
    wait_idle(lab)
    last = run_service(lab)
    assert last["rc"] == 0 and last["sent"] is True, sh(lab, "cat", str(last["log"]))
    assert "org.example.Editor" in sh(lab, "flatpak", "list", "--system", "--app", "--columns=application")
    collected = json.loads((collector["dir"] / f"{HOST}.json").read_text())
    assert list(collected["hosts"]) == [HOST] and collected["check_mode"] is False
    again = run_service(lab)  # converged: nothing left to change
    assert again["rc"] == 0 and report_of(lab, again)["hosts"][HOST]["status"] == "in_sync"


def test_a_drifted_host_repairs_itself_at_its_next_timer_run(
    lab: LabAPI, ansible: Lab, served: dict[str, str], collector: dict, tmp_path: Path
) -> None:
    sh(lab, "flatpak", "install", "-y", "--system", "--noninteractive", "flathub", EXTRA_APP)
    # The timer's next elapse, 30 s from now on the host's clock, to the second (no spread, 1 s accuracy).
    elapse = int(sh(lab, "date", "-u", "+%s")) + 30
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(elapse))
    fast = role_vars(served, collector, pull_on_calendar=when, pull_randomized_delay_sec="0", pull_accuracy_sec="1s")
    applied = ansible.playbook_text(role_play(HOST, "immutable.hosts.pull", fast))
    assert applied.ok, applied.explain()
    assert when in sh(lab, "cat", "/etc/systemd/system/immutable-hosts-pull.timer")
    deadline = time.monotonic() + 180
    while True:
        done = lab.exec(HOST, ["cat", "/var/lib/immutable-hosts/pull/last-run.json"])
        last = json.loads(done.stdout)
        started = datetime.datetime.fromisoformat(str(last["started"])).timestamp()
        if started >= elapse - 1 and lab.exec(HOST, ["systemctl", "is-active", "--quiet", SERVICE]).returncode != 0:
            break
        assert time.monotonic() < deadline, f"the timer did not start a run at {when}: {last}"
        time.sleep(2)
    assert last["rc"] == 0, sh(lab, "cat", str(last["log"]))
    assert EXTRA_APP not in sh(lab, "flatpak", "list", "--system", "--app", "--columns=application")
    host = report_of(lab, last)["hosts"][HOST]
    assert host["status"] == "drifted"  # in converge mode: what the run changed
    assert any(EXTRA_APP in json.dumps(change) for change in host["changes"]), host["changes"]
    collected = json.loads((collector["dir"] / f"{HOST}.json").read_text())
    assert collected["generated"] == report_of(lab, last)["generated"]
    merged = subprocess.run(
        [sys.executable, "-m", "immutable_hosts.cli", "drift", "merge", "--report-dir", str(tmp_path), str(collector["dir"])],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        check=False,
    )
    assert merged.returncode == 2, merged.stderr  # 2: the fleet report shows drift (the change the run made)
    fleet = json.loads((tmp_path / "drift.json").read_text())
    assert fleet["hosts"][HOST]["status"] == "drifted"
    logs = sh(lab, "ls", "/var/lib/immutable-hosts/pull/logs").split()
    assert len(logs) == 3 and all(name.endswith("-converge.log") for name in logs)


def test_check_mode_reports_drift_and_changes_nothing(lab: LabAPI, ansible: Lab, served: dict, collector: dict) -> None:
    result = ansible.playbook_text(
        role_play(HOST, "immutable.hosts.pull", role_vars(served, collector, pull_mode="check", pull_keep=2))
    )
    assert result.ok, result.explain()
    sh(lab, "flatpak", "install", "-y", "--system", "--noninteractive", "flathub", EXTRA_APP)
    last = run_service(lab)
    assert last["rc"] == 0 and last["mode"] == "check", sh(lab, "cat", str(last["log"]))
    assert EXTRA_APP in sh(lab, "flatpak", "list", "--system", "--app", "--columns=application")
    report = report_of(lab, last)
    assert report["check_mode"] is True and report["hosts"][HOST]["status"] == "drifted"
    assert any(EXTRA_APP in json.dumps(change) for change in report["hosts"][HOST]["changes"])
    # pull_keep=2: the oldest logs and reports are gone
    assert len(sh(lab, "ls", "/var/lib/immutable-hosts/pull/logs").split()) == 2
    assert len(sh(lab, "ls", REPORTS).split()) == 2


def test_a_commit_signed_by_no_trusted_key_is_refused(lab: LabAPI) -> None:
    # the same repository, a new commit without a signature
    work = lab.state_dir / "pull-work" / "fleet"
    (work / "UNSIGNED").write_text("not signed\n")
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-m", "unsigned"], cwd=work, check=True)
    bare = LabState(lab.state_dir).server_dir / "pull" / "git" / "fleet.git"
    subprocess.run(["git", "push", "-q", str(bare), "HEAD:refs/heads/main"], cwd=work, check=True)
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)
    last = run_service_expect_failure(lab)
    log = sh(lab, "cat", str(last["log"]))
    assert last["rc"] != 0 and last["report"] is None, log
    assert "verify" in log.lower() and "signature" in log.lower(), log
    assert "PLAY RECAP" not in log  # the playbook never ran


def run_service_expect_failure(lab: LabAPI) -> dict[str, object]:
    done = lab.exec(HOST, ["systemctl", "start", SERVICE])
    assert done.returncode != 0  # the unit failed: systemctl says so
    return json.loads(sh(lab, "cat", "/var/lib/immutable-hosts/pull/last-run.json"))


def test_removing_pull_mode_keeps_the_reports(lab: LabAPI, ansible: Lab, served: dict, collector: dict) -> None:
    play = role_play(HOST, "immutable.hosts.pull", role_vars(served, collector, pull_state="absent"))
    result = ansible.playbook_text(play)
    assert result.ok and result.changed(HOST), result.explain()
    assert lab.exec(HOST, ["test", "-e", "/var/lib/immutable-hosts/pull/venv"]).returncode == 1
    assert lab.exec(HOST, ["test", "-e", "/etc/systemd/system/immutable-hosts-pull.timer"]).returncode == 1
    assert sh(lab, "ls", REPORTS).split()
    again = ansible.playbook_text(play)
    assert again.ok and not again.changed(HOST), again.explain()
