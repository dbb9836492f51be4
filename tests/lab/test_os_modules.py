"""The OS-tree modules against lab hosts, through real ansible-playbook runs.

Every module converges, converges again with changed=false, and in check mode on a drifted host reports the drift
(the diff is asserted) while the host's state hash stays the same. Scenarios from the issue: rebase then
ansible.builtin.reboot (the booted deployment carries the new origin and the layered packages survive); a package
layered while an update is staged stacks on the staged deployment; a busy transaction is waited on; an update driver
is respected. Hosts: silverblue-1..4 and bootc-1 (other test files own the others).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from harness import passes_on, role_play
from snapshot import assert_unchanged, snapshot

from immutable_hosts.lab import ostree_content

pytestmark = pytest.mark.lab

FACTS = "immutable.hosts.ostree_facts"


def play(tasks: str, hosts: str) -> str:
    return f"- hosts: {hosts}\n  gather_facts: false\n  tasks:\n{tasks}"


def task(name: str, module: str, args: dict) -> str:
    body = json.dumps(args)
    return f"    - name: {name}\n      {module}: {body}\n      register: out\n"


def facts(lab, host: str) -> dict:
    run = lab.module(FACTS, hosts=[host])
    assert run.ok, run.explain()
    return run.results[0].result["ansible_facts"]["ostree"]


def status(lab_session, host: str) -> dict:
    done = lab_session.exec(host, "rpm-ostree", "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def converge_twice(lab, host: str, module: str, args: dict):
    """Run the task for real, then again; return both results of the module task."""
    text = play(task("under test", module, args), host)
    first = lab.playbook_text(text, hosts=[host], diff=True)
    assert first.ok, first.explain()
    second = lab.playbook_text(text, hosts=[host], diff=True)
    assert second.ok, second.explain()
    one, two = first.task("under test", host), second.task("under test", host)
    assert two.changed is False, f"second run changed: {two.result}"
    return one, two


def check_changes_nothing(lab, lab_session, host: str, module: str, args: dict):
    """Check mode on a drifted host: reports the change, with a diff, and the host is untouched."""
    before = snapshot(lab_session.access(host))
    run = lab.playbook_text(play(task("under test", module, args), host), hosts=[host], check=True, diff=True)
    assert run.ok, run.explain()
    result = run.task("under test", host)
    assert result.changed is True, result.result
    assert_unchanged(before, snapshot(lab_session.access(host)))
    return result


def rpm_ostree_calls(result) -> list:
    return [argv[1:] for argv in result.result["commands"] if argv[0].endswith("rpm-ostree")]


def test_kargs_converge_check_and_bad_input(lab, lab_session, lab_hosts):
    (host,) = lab_hosts("silverblue-1")
    args = {"args": ["mitigations=off", "console=ttyS0,115200"], "state": "present"}
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.kargs", args)
    assert "mitigations=off" in checked.diff["after"]["kargs"] and "mitigations=off" not in checked.diff["before"]["kargs"]
    first, second = converge_twice(lab, host, "immutable.hosts.kargs", args)
    assert first.changed and first.result["reboot_required"] and "kargs-changed" in first.result["reboot_reasons"]
    assert first.diff["after"]["kargs"] == second.result["kargs"]
    assert rpm_ostree_calls(second) == [["status", "--json"]], "a converged host costs one status read"
    pending = facts(lab, host)
    assert "mitigations=off" in pending["kargs"] and pending["pending"]["staged"] is True
    removed, _again = converge_twice(lab, host, "immutable.hosts.kargs", {"args": ["quiet"], "state": "absent"})
    assert "quiet" in removed.diff["before"]["kargs"] and "quiet" not in removed.diff["after"]["kargs"]
    before = snapshot(lab_session.access(host))
    bad = lab.playbook_text(
        play(task("under test", "immutable.hosts.kargs", {"args": ["ostree=/x", "a\nb"]}), host), hosts=[host]
    )
    assert bad.rc != 0 and "managed by OSTree" in json.dumps(bad.task("under test", host).result)
    assert_unchanged(before, snapshot(lab_session.access(host)))


def test_packages_update_policy_and_staged_stacking(lab, lab_session, lab_hosts):
    (host,) = lab_hosts("silverblue-2")
    policy = {"policy": "stage", "idle_exit_timeout": 120}
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.update_policy", policy)
    assert "AutomaticUpdatePolicy=stage" in checked.diff[0]["after"]
    first, _second = converge_twice(lab, host, "immutable.hosts.update_policy", policy)
    assert first.result["settings"]["policy"] == "stage"
    assert facts(lab, host)["update_policy"]["policy"] == "stage"

    packages = {"name": ["htop", "tmux"], "override_remove": ["firefox"]}
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.rpm_ostree_packages", packages)
    assert checked.diff["after"]["requested_packages"] == ["htop", "tmux"]
    first, second = converge_twice(lab, host, "immutable.hosts.rpm_ostree_packages", packages)
    assert [c[0] for c in rpm_ostree_calls(first)].count("override") + [c[0] for c in rpm_ostree_calls(first)].count(
        "install"
    ) == 1
    assert rpm_ostree_calls(second) == [["status", "--json"]]
    assert first.result["deployment"]["requested_packages"] == ["htop", "tmux"]
    assert first.result["deployment"]["requested_base_removals"] == ["firefox"]

    skipped, _ = converge_twice(lab, host, "immutable.hosts.rpm_ostree_packages", {"name": ["htop", "nano"]})
    assert "nano" in skipped.result["provided_by_base"], "the base provides nano: reported, not requested"

    # An update is staged; a package layered now stacks on it.
    published = lab_session.lab.publish("fedora/41/x86_64/silverblue")
    assert published["kind"] == "ostree" and len(published["commit"]) == 64
    staged, _ = converge_twice(lab, host, "immutable.hosts.deployment", {"upgrade": "stage"})
    assert staged.changed and staged.result["update_available"] is True
    new_base = staged.result["deployment"]["base_checksum"]
    stacked, _ = converge_twice(lab, host, "immutable.hosts.rpm_ostree_packages", {"name": ["zsh"]})
    pending = stacked.result["deployment"]
    assert pending["staged"] is True and pending["base_checksum"] == new_base
    assert pending["requested_packages"] == ["htop", "tmux", "zsh"]
    doc = status(lab_session, host)
    assert [d["booted"] for d in doc["deployments"]][:2] == [False, True]


def test_rebase_then_reboot_keeps_layered_packages(lab, lab_session, lab_hosts):
    (host,) = lab_hosts("silverblue-3")
    converge_twice(lab, host, "immutable.hosts.rpm_ostree_packages", {"name": ["htop"]})
    target = {"ref": "fedora:fedora/42/x86_64/silverblue"}
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.rebase", target)
    assert checked.diff == {
        "before": {"origin": "fedora:fedora/41/x86_64/silverblue", "digest": None},
        "after": {"origin": "fedora:fedora/42/x86_64/silverblue", "digest": None},
    }
    first, second = converge_twice(lab, host, "immutable.hosts.rebase", target)
    assert first.result["step"] == "rebase" and second.result["step"] == "none"
    assert rpm_ostree_calls(second) == [["status", "--json"]], "never 'Old and new refs are equal'"
    reboot(lab, lab_session, host)
    after = facts(lab, host)
    assert after["booted"]["origin"] == "fedora:fedora/42/x86_64/silverblue"
    assert after["booted"]["requested_packages"] == ["htop"] and after["booted"]["packages"] == ["htop"]
    assert after["reboot_required"] is False and after["pending"] is None
    _again, converged = converge_twice(lab, host, "immutable.hosts.rebase", target)
    assert converged.result["reboot_required"] is False


def test_busy_transaction_is_waited_on_and_driver_respected(lab, lab_session, lab_hosts):
    (host,) = lab_hosts("silverblue-4")
    argv = [sys.executable, "-m", "immutable_hosts.lab.cli", "sim", "--state-dir", str(lab_session.state_dir), host, "busy", "5"]
    holder = subprocess.Popen([*argv, "upgrade (download only)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while status(lab_session, host)["transaction"] is None:
            assert time.monotonic() < deadline, "the busy transaction never showed up"
            time.sleep(0.2)
        run = lab.playbook_text(
            play(task("under test", "immutable.hosts.kargs", {"args": ["nosmt"], "wait_timeout": 60}), host), hosts=[host]
        )
        assert run.ok, run.explain()
        result = run.task("under test", host).result
        statuses = [c for c in rpm_ostree_calls(run.task("under test", host)) if c == ["status", "--json"]]
        assert len(statuses) >= 2, "the module polled the status while the transaction ran"
        assert ["kargs", "--unchanged-exit-77", "--append-if-missing=nosmt"] in rpm_ostree_calls(run.task("under test", host))
        assert result["changed"] is True
    finally:
        holder.wait(timeout=60)

    short = subprocess.Popen([*argv[:-1], "30", "automatic (stage)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while status(lab_session, host)["transaction"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        run = lab.playbook_text(
            play(task("under test", "immutable.hosts.kargs", {"args": ["nowatchdog"], "wait_timeout": 2}), host), hosts=[host]
        )
        assert run.rc != 0 and "busy" in run.task("under test", host).result["msg"]
    finally:
        short.kill()
        short.wait(timeout=30)
        lab_session.exec(host, "rpm-ostree", "cancel")

    driver = lab_session.lab.sim(host, "driver", "Zincati")
    assert driver.returncode == 0, driver.stderr
    assert status(lab_session, host)["update-driver"]["driver-name"] == "Zincati"
    before = snapshot(lab_session.access(host))
    refused = lab.playbook_text(
        play(task("under test", "immutable.hosts.rebase", {"ref": "fedora:fedora/42/x86_64/silverblue"}), host), hosts=[host]
    )
    assert refused.rc != 0 and "Zincati" in refused.task("under test", host).result["msg"]
    assert_unchanged(before, snapshot(lab_session.access(host)))
    bypass = {"ref": "fedora:fedora/42/x86_64/silverblue", "bypass_driver": True}
    first, _second = converge_twice(lab, host, "immutable.hosts.rebase", bypass)
    assert ["rebase", "--bypass-driver", "fedora:fedora/42/x86_64/silverblue"] in rpm_ostree_calls(first)


def reboot(lab, lab_session, host: str) -> None:
    boot_id = lab_session.exec(host, "cat", "/proc/sys/kernel/random/boot_id").stdout
    run = lab.playbook_text(play("    - name: reboot\n      ansible.builtin.reboot: {reboot_timeout: 120}\n", host), hosts=[host])
    assert run.ok, run.explain()
    assert lab_session.exec(host, "cat", "/proc/sys/kernel/random/boot_id").stdout != boot_id


def test_deployment_pins_and_rollback(lab, lab_session, lab_hosts):
    (host,) = lab_hosts("silverblue-1")
    reboot(lab, lab_session, host)  # the kargs test staged a deployment: now booted, and the old one is the rollback
    pinned, _ = converge_twice(lab, host, "immutable.hosts.deployment", {"pin": ["booted"]})
    assert pinned.changed and facts(lab, host)["booted"]["pinned"] is True
    converge_twice(lab, host, "immutable.hosts.kargs", {"args": ["nosmt"]})  # something staged again
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.deployment", {"rollback": True})
    assert "rollback-queued" in checked.result["reboot_reasons"]
    rolled, _ = converge_twice(lab, host, "immutable.hosts.deployment", {"rollback": True})
    assert rolled.changed and "rollback-queued" in rolled.result["reboot_reasons"]
    assert [c[0] for c in rpm_ostree_calls(rolled)][1:3] == ["cleanup", "rollback"], "the staged deployment is cleaned up first"
    after = facts(lab, host)
    assert after["pending"]["staged"] is False and after["staged"] is None
    assert after["reboot_reasons"][0] == "rollback-queued"


def test_deployment_finalizes_a_locked_update_with_rpm_ostree(lab, lab_session, lab_hosts):
    """An update staged with its finalization locked survives a plain reboot only as long as nobody reboots; finalize
    applies it (rpm-ostree finalize-deployment with the checksum read) and the task returns once the host booted it."""
    (host,) = lab_hosts("bootc-1")
    lab_session.lab.publish(ostree_content.BOOTC_IMAGE)
    staged, _ = converge_twice(lab, host, "immutable.hosts.deployment", {"upgrade": "stage", "lock_finalization": True})
    assert staged.changed and staged.result["staged_locked"] is True and staged.result["reboot_required"] is False
    locked = facts(lab, host)["staged"]
    assert locked["finalization_locked"] is True
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.deployment", {"finalize": True})
    assert checked.result["finalized"]["checksum"] == locked["checksum"] and checked.result["reboot_required"] is True
    first, second = converge_twice(lab, host, "immutable.hosts.deployment", {"finalize": True, "reboot_timeout": 180})
    assert first.changed and first.result["rebooted"] is True and first.result["booted"]["checksum"] == locked["checksum"]
    assert ["finalize-deployment", locked["base_checksum"]] in [argv[-2:] for argv in first.result["commands"]]
    assert second.result["finalized"] is None
    after = facts(lab, host)
    assert after["booted"]["checksum"] == locked["checksum"] and after["staged"] is None and after["reboot_required"] is False


def test_the_health_gate_rolls_a_broken_update_back_with_rpm_ostree(lab, lab_session, lab_hosts):
    """The health role on a host rpm-ostree manages: an update applied with no controller (rpm-ostree upgrade
    --reboot, as the automatic policy apply does) fails its required check twice, and the gate rolls back with
    rpm-ostree rollback and reboots into the deployment before."""
    (host,) = lab_hosts("bootc-1")
    good = facts(lab, host)["booted"]["checksum"]
    gate = {"health_required_checks": [{"name": "10-application", "content": passes_on(good)}], "health_max_failed_boots": 2}
    run = lab.playbook_text(role_play(host, "immutable.hosts.health", gate), hosts=[host])
    assert run.ok, run.explain()
    before = facts(lab, host)["health"]
    assert before["status"] == "green" and before["healthy_before"] is True
    lab_session.lab.publish(ostree_content.BOOTC_IMAGE)
    lab_session.exec(host, "rpm-ostree", "upgrade", "--reboot")  # the session ends with the reboot
    deadline, health = time.monotonic() + 420, before
    while time.monotonic() < deadline and (
        health.get("last_rollback") in (None, before["last_rollback"]) or health["status"] != "green"
    ):
        time.sleep(5)
        done = lab_session.exec(host, "cat", "/var/lib/immutable-hosts/health/state.json")
        health = json.loads(done.stdout) if done.returncode == 0 else health
    after = facts(lab, host)
    assert after["booted"]["checksum"] == good and after["health"]["status"] == "green", after["health"]
    rollback = after["health"]["last_rollback"]
    assert (
        rollback["from"] == "%s.%d" % (after["rollback"]["checksum"], after["rollback"]["serial"])
        and rollback["failed_boots"] == 2
    )
    assert rollback["reason"] == "required check failed: 10-application.sh"
    removed = lab.playbook_text(role_play(host, "immutable.hosts.health", {"health_state": "absent"}), hosts=[host])
    assert removed.ok and removed.changed(host), removed.explain()


def test_unattended_rpm_ostree_updates_wait_for_ac_power_the_network_and_the_user(lab, lab_session, lab_hosts):
    """update_policy's conditions on rpm-ostree's update service: AC power and the gate program in the drop-in of
    rpm-ostreed-automatic.service; a local login session holds the update back (skipped, not failed)."""
    (host,) = lab_hosts("bootc-1")
    gates = {"on_ac_power": True, "skip_metered": True, "skip_user_sessions": True}
    check_changes_nothing(lab, lab_session, host, "immutable.hosts.update_policy", gates)
    first, _second = converge_twice(lab, host, "immutable.hosts.update_policy", gates)
    assert first.result["backend"] == "rpm-ostree" and first.result["skip_user_sessions"] is True
    unit = lab_session.exec(host, "systemctl", "cat", "rpm-ostreed-automatic.service").stdout
    assert "ConditionACPower=true" in unit and "update-gate --skip-metered --skip-user-sessions" in unit, unit
    login = ["systemd-run", "--unit=lab-local-login", "-p", "PAMName=login", "-p", "User=root"]
    login += ["-E", "XDG_SESSION_CLASS=user", "-E", "XDG_SESSION_TYPE=tty", "sleep", "600"]
    assert lab_session.exec(host, *login).returncode == 0
    try:
        # the lab's hosts run on AC power as far as systemd knows (no battery), so the gate decides
        lab_session.exec(host, "systemctl", "start", "rpm-ostreed-automatic.service")
        shown = lab_session.exec(host, "systemctl", "show", "-p", "ConditionResult", "rpm-ostreed-automatic.service").stdout
        journal = lab_session.exec(host, "journalctl", "--no-pager", "-o", "cat", "-u", "rpm-ostreed-automatic.service").stdout
        assert "ConditionResult=no" in shown and "not now, a user session is active" in journal, (shown, journal)
    finally:
        lab_session.exec(host, "systemctl", "stop", "lab-local-login.service")
    off = {"on_ac_power": False, "skip_metered": False, "skip_user_sessions": False}
    converge_twice(lab, host, "immutable.hosts.update_policy", off)
    assert "update-gate" not in lab_session.exec(host, "systemctl", "cat", "rpm-ostreed-automatic.service").stdout


def test_bootc_host_switches_with_bootc(lab, lab_session, lab_hosts):
    (host,) = lab_hosts("bootc-1")
    target = {"image": "quay.io/fedora/fedora-silverblue:42", "signature": "unverified", "backend": "bootc"}
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.rebase", target)
    assert checked.diff["after"]["origin"] == "ostree-unverified-registry:quay.io/fedora/fedora-silverblue:42"
    first, second = converge_twice(lab, host, "immutable.hosts.rebase", target)
    assert first.result["backend"] == "bootc" and second.result["step"] == "none"
    assert [argv[1] for argv in first.result["commands"] if argv[0].endswith("bootc")][:2] == ["status", "switch"]


BAD_INPUTS = [
    ("immutable.hosts.kargs", {"args": ["ostree=/x"]}, "managed by OSTree"),
    ("immutable.hosts.rpm_ostree_packages", {"name": ["htop;reboot"]}, "is not a package name"),
    ("immutable.hosts.kargs", {"args": ["foo=a\u2028b"]}, "contains U+2028 (LINE SEPARATOR)"),
    (
        "immutable.hosts.rebase",
        {"image": "ostree-unverified-registry:quay.io/fedora/fedora-silverblue:42"},
        "contradicts signature=signed",
    ),
    ("immutable.hosts.rpm_ostree_packages", {"name": ["http://images.lab:8088/x-1-1.noarch.rpm"]}, "plain http:// RPMs"),
    ("immutable.hosts.rpm_ostree_packages", {"override_reset": ["all", "firefox"]}, "'all'"),
    ("immutable.hosts.rebase", {"image": "quay.io/Fedora/x:42"}, "invalid repository"),
    ("immutable.hosts.rebase", {"ref": "fedora:fedora//42"}, "invalid ref"),
    ("immutable.hosts.deployment", {"rollback": True, "upgrade": "stage"}, "contradict"),
    ("immutable.hosts.update_policy", {"policy": "sometimes"}, "value of policy must be one of"),
]


def test_bad_input_changes_nothing_on_the_host(lab, lab_session, lab_hosts):
    (host,) = lab_hosts("silverblue-4")
    tasks = "".join(
        f"    - name: bad {index}\n      {module}: {json.dumps(args)}\n      ignore_errors: true\n"
        for index, (module, args, _message) in enumerate(BAD_INPUTS)
    )
    before = snapshot(lab_session.access(host))
    run = lab.playbook_text(play(tasks, host), hosts=[host])
    for index, (module, _args, message) in enumerate(BAD_INPUTS):
        result = run.task(f"bad {index}", host)
        assert result.status == "failed" and message in result.result["msg"], (module, result.result)
        assert not [argv for argv in result.result.get("commands", []) if argv[1:2] != ["status"]], "nothing but a read ran"
    assert_unchanged(before, snapshot(lab_session.access(host)))


def test_initramfs_round_trip(lab, lab_session, lab_hosts):
    """Regeneration with dracut arguments and a tracked /etc file, then back to the image's initramfs: each way checked
    (no change), converged twice, and stacked on one pending deployment."""
    (host,) = lab_hosts("silverblue-3")
    lab_session.exec(host, "sh", "-c", "echo 'luks-1 UUID=1 none tpm2-device=auto' > /etc/crypttab")
    on = {"regenerate": True, "args": ["--add=tpm2-tss"], "etc": ["/etc/crypttab"]}
    checked = check_changes_nothing(lab, lab_session, host, "immutable.hosts.initramfs", on)
    assert checked.diff == {
        "before": {"regenerate": False, "args": [], "etc": []},
        "after": {"regenerate": True, "args": ["--add=tpm2-tss"], "etc": ["/etc/crypttab"]},
    }
    first, second = converge_twice(lab, host, "immutable.hosts.initramfs", on)
    assert [c[0] for c in rpm_ostree_calls(first)][1:3] == ["initramfs", "initramfs-etc"]
    assert first.result["reboot_required"] and "layering-changed" in first.result["reboot_reasons"]
    assert rpm_ostree_calls(second) == [["status", "--json"]]
    pending = status(lab_session, host)["deployments"][0]
    assert pending["regenerate-initramfs"] is True and pending["initramfs-etc"] == ["/etc/crypttab"]
    off = {"regenerate": False, "etc": [], "etc_exact": True}
    check_changes_nothing(lab, lab_session, host, "immutable.hosts.initramfs", off)
    back, _again = converge_twice(lab, host, "immutable.hosts.initramfs", off)
    assert back.diff["after"] == {"regenerate": False, "args": [], "etc": []}
    before = snapshot(lab_session.access(host))
    bad = lab.playbook_text(play(task("under test", "immutable.hosts.initramfs", {"etc": ["/var/x"]}), host), hosts=[host])
    assert bad.rc != 0 and "outside /etc" in json.dumps(bad.task("under test", host).result)
    assert_unchanged(before, snapshot(lab_session.access(host)))


def test_rpm_repo_lets_layering_use_another_repository(lab, lab_session, lab_hosts):
    """A package only the lab's extra repository has: not found until rpm_repo adds the repository (with its key),
    then layered in one transaction with a Fedora package; an unsigned repository's package is refused under gpgcheck."""
    from immutable_hosts.lab.ostree_content import EXTRA_REPOS, RPM_KEY

    (host,) = lab_hosts("silverblue-2")
    packages = {"name": ["tailscale", "neovim"], "state": "present"}
    before = snapshot(lab_session.access(host))
    missing = lab.playbook_text(play(task("under test", "immutable.hosts.rpm_ostree_packages", packages), host), hosts=[host])
    assert missing.rc != 0 and "tailscale" in json.dumps(missing.task("under test", host).result)
    assert_unchanged(before, snapshot(lab_session.access(host)))

    repo = {"name": "lab-extras", "description": "Lab extras", "baseurl": [EXTRA_REPOS["lab-extras"]["baseurl"]], "key": RPM_KEY}
    run = lab.playbook_text(play(task("under test", "immutable.hosts.rpm_repo", repo), host), hosts=[host], check=True, diff=True)
    assert run.ok and run.task("under test", host).changed, run.explain()
    assert lab_session.exec(host, "test", "!", "-e", "/etc/yum.repos.d/lab-extras.repo").returncode == 0
    converge_twice(lab, host, "immutable.hosts.rpm_repo", repo)
    layered, _again = converge_twice(lab, host, "immutable.hosts.rpm_ostree_packages", packages)
    installs = [argv for argv in rpm_ostree_calls(layered) if argv[0] == "install"]
    assert len(installs) == 1 and {"tailscale", "neovim"} <= set(installs[0]), installs
    assert {"tailscale", "neovim"} <= set(status(lab_session, host)["deployments"][0]["requested-packages"])

    unsigned = {"name": "lab-unsigned", "baseurl": [EXTRA_REPOS["lab-unsigned"]["baseurl"]]}
    converge_twice(lab, host, "immutable.hosts.rpm_repo", unsigned)
    before = snapshot(lab_session.access(host))
    refused = lab.playbook_text(
        play(task("under test", "immutable.hosts.rpm_ostree_packages", {"name": ["lab-unsigned-tool"]}), host), hosts=[host]
    )
    assert refused.rc != 0 and "is GPG enabled" in json.dumps(refused.task("under test", host).result)
    assert_unchanged(before, snapshot(lab_session.access(host)))
    for name in ("lab-extras", "lab-unsigned"):
        converge_twice(lab, host, "immutable.hosts.rpm_repo", {"name": name, "state": "absent"})
