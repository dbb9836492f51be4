"""The roles and playbooks on a small fleet of their own: one Silverblue, one Kinoite and one Apple silicon host.

site.yml converges them to the demo's desired state (tools/demo/group_vars, copied next to the lab inventory with the
lab registry's key as `make demo` does; the Silverblue host takes the signed path), rebooting each host once; a second run changes nothing; drift.yml changes nothing and reports
nothing; drift injected by hand (an extra Flatpak, a package layered with rpm-ostree, a unit edited) is reported by
drift.yml without touching the hosts, and site.yml converges it away. On the Apple host, an image without arm64 is
refused before any rebase.

The tests run in file order and share the hosts (each test starts from the state the previous one left).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import state_dir_of_its_own
from harness import Lab, RunResult
from snapshot import HostAccess, assert_unchanged, snapshot

from immutable_hosts.lab import registry
from immutable_hosts.lab.api import Lab as LabAPI
from immutable_hosts.lab.state import LabState

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
DESIRED = REPO / "tools" / "demo" / "group_vars"
SITE = REPO / "playbooks" / "site.yml"
DRIFT = REPO / "playbooks" / "drift.yml"
HOSTS = {"silverblue-1": "silverblue", "kinoite-1": "kinoite", "apple-silicon-1": "apple-silicon"}
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path) -> Iterator[Path]:
    state_dir = state_dir_of_its_own(tmp_path_factory, lab_state_dir, "lab-roles")
    try:
        for profile in dict.fromkeys(HOSTS.values()):
            LabAPI(state_dir).up(hosts=1, profile=profile)
        shutil.copytree(DESIRED, state_dir / "group_vars")
        # The silverblue group trusts the lab registry's key from keys/fedora.pub, which `make demo` copies too.
        (state_dir / "keys").mkdir()
        shutil.copyfile(registry.public_keys(LabState(state_dir))["fedora"], state_dir / "keys/fedora.pub")
        yield state_dir
    finally:
        LabAPI(state_dir).down()
        print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def ansible(fleet: Path) -> Lab:
    return Lab(fleet / "inventory.yml")


def access(fleet: Path, host: str) -> HostAccess:
    return HostAccess.from_state_dir(fleet, host)


def sh(fleet: Path, host: str, command: str, user: str = "root") -> str:
    done = access(fleet, host).run(["sh", "-c", command], user=user)
    assert done.returncode == 0, f"{host}: {command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def boots(fleet: Path) -> dict[str, int]:
    status = LabAPI(fleet).status()
    return {h["name"]: h["boots"] for h in status["hosts"]}


def timed(name: str, run: Callable[[], RunResult]) -> RunResult:
    started = time.monotonic()
    result = run()
    TIMINGS[name] = time.monotonic() - started
    return result


def task_name(task: str) -> str:
    """A task's name without the "role : " prefix Ansible adds."""
    return task.split(" : ", 1)[-1]


def changed_names(run: RunResult, host: str) -> list[str]:
    return [task_name(r.task) for r in run.changed_tasks(host)]


def booted(fleet: Path, host: str) -> dict:
    status = json.loads(sh(fleet, host, "rpm-ostree status --json"))
    return next(d for d in status["deployments"] if d["booted"])


def test_site_converges_with_one_reboot_then_changes_nothing(fleet: Path, ansible: Lab) -> None:
    before = boots(fleet)
    first = timed("site.yml first run", lambda: ansible.playbook(SITE))
    assert first.ok, first.explain()
    assert {h: n - before[h] for h, n in boots(fleet).items()} == dict.fromkeys(HOSTS, 1), "one reboot per host"

    silverblue, kinoite, apple = (booted(fleet, h) for h in HOSTS)
    # the signed path: the image, verified with the key the group trusts, and a package from the lab's COPR
    assert silverblue["container-image-reference"] == "ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42"
    assert silverblue["requested-packages"] == ["htop", "starship", "tmux"]
    policy = json.loads(sh(fleet, "silverblue-1", "cat /etc/containers/policy.json"))
    assert policy["default"] == [{"type": "reject"}]
    assert policy["transports"]["docker"]["quay.io/fedora"][0]["type"] == "sigstoreSigned"
    assert kinoite["requested-packages"] == ["zsh"]
    # the x86_64 ref of the apple_silicon group was rewritten to its aarch64 twin
    assert apple["origin"] == "fedora:fedora/42/aarch64/silverblue"
    assert "preempt=full" in sh(fleet, "silverblue-1", "cat /proc/cmdline; cat /boot/loader/entries/*.conf")
    for host, apps in {
        "silverblue-1": ["org.example.Editor", "org.example.Viewer"],
        "kinoite-1": ["org.example.Chat", "org.example.Editor"],
        "apple-silicon-1": ["org.example.Viewer"],
    }.items():
        assert sorted(sh(fleet, host, "flatpak list --system --app --columns=application").split()) == apps
        active = sh(fleet, host, "XDG_RUNTIME_DIR=/run/user/1000 systemctl --user is-active heartbeat.service", user="core")
        assert active.strip() == "active"
        assert sh(fleet, host, "ls /var/lib/systemd/linger").split() == ["core"]

    second = timed("site.yml second run", lambda: ansible.playbook(SITE))
    assert second.ok, second.explain()
    assert not second.changed(), [(r.host, r.task) for r in second.changed_tasks()]
    assert boots(fleet) == {h: before[h] + 1 for h in HOSTS}, "no reboot on a converged host"


def test_drift_check_on_converged_fleet_changes_and_reports_nothing(fleet: Path, ansible: Lab) -> None:
    before = {h: snapshot(access(fleet, h)) for h in HOSTS}
    run = timed("drift.yml converged", lambda: ansible.playbook(DRIFT))
    assert run.ok, run.explain()
    assert not run.changed(), [(r.host, r.task) for r in run.changed_tasks()]
    for host in HOSTS:
        assert_unchanged(before[host], snapshot(access(fleet, host)))


def test_injected_drift_is_reported_then_converged(fleet: Path, ansible: Lab) -> None:
    # drift the way a person makes it
    sh(fleet, "silverblue-1", "flatpak install -y --system --noninteractive flathub org.example.Chat")
    sh(fleet, "kinoite-1", "rpm-ostree install vim-enhanced")
    unit = "/home/core/.config/containers/systemd/heartbeat.container"
    sh(fleet, "apple-silicon-1", f"sed -i 's/^Description=.*/Description=edited by hand/' {unit}")

    before = {h: snapshot(access(fleet, h)) for h in HOSTS}
    run = timed("drift.yml with drift", lambda: ansible.playbook(DRIFT))
    assert run.ok, run.explain()
    for host in HOSTS:
        assert_unchanged(before[host], snapshot(access(fleet, host)))

    # One module run per host (the workstation role's host_state), whose result names each resource that drifted.
    for host, module in (
        ("silverblue-1", "immutable.hosts.flatpak"),
        ("kinoite-1", "immutable.hosts.rpm_ostree_packages"),
        ("apple-silicon-1", "immutable.hosts.quadlet"),
    ):
        assert changed_names(run, host) == ["The whole host"]
        whole = next(r for r in run.changed_tasks(host) if task_name(r.task) == "The whole host")
        resources = whole.result["resources"]
        assert [entry["module"] for entry in resources if entry["changed"]] == [module], resources
    flatpak_diff = json.dumps(run.diffs("silverblue-1"))
    assert "org.example.Chat" in flatpak_diff
    assert "vim-enhanced" in json.dumps(run.diffs("kinoite-1"))
    assert "edited by hand" in json.dumps(run.diffs("apple-silicon-1"))

    # A tag selects a part of the one run: --tags flatpak checks the Flatpak part alone, so only the app is drift.
    tagged = ansible.playbook(DRIFT, args=["--tags", "flatpak"])
    assert tagged.ok, tagged.explain()
    assert [r.host for r in tagged.changed_tasks()] == ["silverblue-1"], [(r.host, r.task) for r in tagged.changed_tasks()]
    whole = next(r for r in tagged.changed_tasks("silverblue-1") if task_name(r.task) == "The whole host")
    assert {entry["module"] for entry in whole.result["resources"]} <= {
        "immutable.hosts.flatpak_remote", "immutable.hosts.flatpak", "immutable.hosts.flatpak_override"
    }  # fmt: skip

    fixed = timed("site.yml after drift", lambda: ansible.playbook(SITE))
    assert fixed.ok, fixed.explain()
    again = ansible.playbook(DRIFT)
    assert again.ok and not again.changed(), [(r.host, r.task) for r in again.changed_tasks()]
    assert "org.example.Chat" not in sh(fleet, "silverblue-1", "flatpak list --system --app --columns=application")
    assert "edited by hand" not in sh(fleet, "apple-silicon-1", f"cat {unit}")


def test_apple_silicon_refuses_image_without_arm64_before_rebase(fleet: Path, ansible: Lab) -> None:
    host = "apple-silicon-1"
    before = snapshot(access(fleet, host))
    run = ansible.playbook(
        SITE,
        hosts=[host],
        extra_vars={"os_image_ref": None, "os_image_image": "quay.io/fedora-lab/silverblue-x86-only:42"},
    )
    assert run.rc != 0
    failed = [r for r in run.results if r.status == "failed"]
    assert [task_name(r.task) for r in failed] == ["Refuse an image without arm64"], run.explain()
    assert "not arm64" in failed[0].result["msg"]
    assert not [r for r in run.results if r.action == "immutable.hosts.rebase" and r.status != "skipped"]
    assert_unchanged(before, snapshot(access(fleet, host)))

    offered = ansible.playbook(
        SITE,
        hosts=[host],
        check=True,
        extra_vars={
            "os_image_ref": None,
            "os_image_image": "quay.io/fedora/fedora-silverblue:42",
            "os_image_signature": "unverified",
        },
    )
    assert offered.ok, offered.explain()
    assert offered.task("immutable.hosts.apple_silicon : Refuse an image without arm64", host).status == "ok"


def test_workstation_refuses_a_bad_list_item_before_anything_changes(fleet: Path, ansible: Lab) -> None:
    """workstation checks the types of the composed roles' variables itself and leaves their list items to
    host_state's own options (tools/host_state_doc.py says why): a misspelt key and a bad choice in items still fail
    the host before anything is read or changed, and the message names the item's place in the document."""
    host = "silverblue-1"
    before = snapshot(access(fleet, host))
    run = ansible.playbook(
        SITE,
        hosts=[host],
        extra_vars={
            "flatpak_apps": [{"nmae": "org.example.Editor"}],
            "os_image_kargs": {"quiet": True},
        },
    )
    assert run.rc != 0
    failed = [r for r in run.results if r.status == "failed"]
    # A wrong type of a composed role's variable is the role's own check, before any task.
    assert [r.action for r in failed] == ["ansible.builtin.validate_argument_spec"], run.explain()
    assert "os_image_kargs" in failed[0].result["msg"]

    run = ansible.playbook(SITE, hosts=[host], extra_vars={"flatpak_apps": [{"nmae": "org.example.Editor"}]})
    assert run.rc != 0
    failed = [r for r in run.results if r.status == "failed"]
    assert [(task_name(r.task), r.action) for r in failed] == [("The whole host", "immutable.hosts.host_state")], run.explain()
    assert "flatpak -> apps" in failed[0].result["msg"], failed[0].result["msg"]
    assert not [r for r in run.results if r.status == "changed"]
    assert_unchanged(before, snapshot(access(fleet, host)))
