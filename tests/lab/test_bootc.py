"""A bootc-only host (profile ``bootc-only``): an image-mode system without rpm-ostree, which bootc alone manages.

The modules there: ``update_policy`` (bootc's update timer), ``deployment`` (check, download-only during the day,
stage or finalize in a window, rollback), and what rpm-ostree would layer refused with where it belongs (the image). The
simulator's ``bootc`` against contract section 4 on the same host: ``upgrade --check`` (the booted entry's
``cachedUpdate``), ``--download-only``, ``--from-downloaded``, clap's conflicts, ``--soft-reboot`` (no lab deployment
is soft-reboot capable), ``rollback`` and its revert. Every module runs in check mode (no change on the host), then
twice (the second run changes nothing).

Host: bootc-only-1 (no other test file uses it). Each upgrade test publishes a new digest of the image it follows.
"""

from __future__ import annotations

import json
import time

import pytest
from harness import passes_on, role_play
from snapshot import assert_unchanged, snapshot

from immutable_hosts.lab import ostree_content

pytestmark = pytest.mark.lab

HOST = "bootc-only-1"
IMAGE = ostree_content.BOOTC_IMAGE
REFERENCE = {"image": IMAGE, "transport": "registry"}


def sh(lab_session, command: str, rc: int | None = 0):
    done = lab_session.exec(HOST, "sh", "-c", command)
    if rc is not None:
        assert done.returncode == rc, f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def bootc_status(lab_session) -> dict:
    return json.loads(sh(lab_session, "bootc status --format=json").stdout)["status"]


def facts(lab) -> dict:
    run = lab.module("immutable.hosts.ostree_facts", hosts=[HOST])
    assert run.ok, run.explain()
    return run.results[0].result["ansible_facts"]["ostree"]


def checked_then_twice(lab, lab_session, module: str, args: dict):
    """Check mode reports the change and leaves the host as it was; then the run, then a run that changes nothing."""
    before = snapshot(lab_session.access(HOST))
    checked = lab.module(module, args, hosts=[HOST], check=True, diff=True)
    assert checked.ok and checked.results[0].changed, checked.explain()
    assert_unchanged(before, snapshot(lab_session.access(HOST)))
    first = lab.module(module, args, hosts=[HOST], diff=True)
    assert first.ok and first.results[0].changed, first.explain()
    second = lab.module(module, args, hosts=[HOST], diff=True)
    assert second.ok and not second.results[0].changed, second.explain()
    return checked.results[0].result, first.results[0].result


def published_digest(lab_session) -> str:
    """Publish a new digest of the image the host follows; bootc reports the digest the tag resolves to (the index's,
    as the deployments record it)."""
    return lab_session.lab.publish(IMAGE)["index-digest"]


@pytest.fixture
def host(lab_hosts):
    lab_hosts(HOST)
    return HOST


def test_a_bootc_only_host_has_bootc_and_no_rpm_ostree(lab, lab_session, host) -> None:
    assert sh(lab_session, "command -v rpm-ostree", rc=None).returncode != 0
    assert sh(lab_session, "test -e /etc/rpm-ostreed.conf", rc=None).returncode != 0
    assert "bootc upgrade --apply --quiet" in sh(lab_session, "systemctl cat bootc-fetch-apply-updates.service").stdout
    status = bootc_status(lab_session)
    assert status["booted"]["image"]["image"] == REFERENCE and status["type"] == "bootcHost" and status["staged"] is None
    gathered = facts(lab)
    assert gathered["backend"] == "bootc" and gathered["booted"]["origin_parsed"]["image"] == IMAGE
    assert gathered["reboot_required"] is False and gathered["update_policy"] == {"timer_enabled": False}


def test_update_policy_is_bootcs_timer(lab, lab_session, host) -> None:
    _checked, first = checked_then_twice(lab, lab_session, "immutable.hosts.update_policy", {"timer_enabled": True})
    assert first["backend"] == "bootc" and first["timer"] == "bootc-fetch-apply-updates.timer"
    assert sh(lab_session, "systemctl is-enabled bootc-fetch-apply-updates.timer").stdout.strip() == "enabled"
    assert facts(lab)["update_policy"] == {"timer_enabled": True}
    refused = lab.module("immutable.hosts.update_policy", {"policy": "stage"}, hosts=[HOST])
    assert not refused.ok and "rpm-ostreed.conf" in refused.results[0].result["msg"]
    checked_then_twice(lab, lab_session, "immutable.hosts.update_policy", {"timer_enabled": False})
    # a maintenance window and AC power: drop-ins systemd itself reads
    window = {"window": "Sat 02:00", "on_ac_power": True}
    _checked, first = checked_then_twice(lab, lab_session, "immutable.hosts.update_policy", window)
    assert first["window"] == "Sat 02:00" and first["on_ac_power"] is True
    calendar = sh(lab_session, "systemctl show -p TimersCalendar --value bootc-fetch-apply-updates.timer").stdout
    assert "OnCalendar=Sat *-*-* 02:00:00" in calendar, calendar
    assert "ConditionACPower=true" in sh(lab_session, "systemctl cat bootc-fetch-apply-updates.service").stdout
    bad = lab.module("immutable.hosts.update_policy", {"window": "every full moon"}, hosts=[HOST])
    assert not bad.ok and "not a systemd calendar expression" in bad.results[0].result["msg"]
    checked_then_twice(lab, lab_session, "immutable.hosts.update_policy", {"window": "", "on_ac_power": False})
    assert "OnCalendar" not in sh(lab_session, "systemctl show -p TimersCalendar --value bootc-fetch-apply-updates.timer").stdout


def test_unattended_updates_wait_for_the_user_and_the_network(lab, lab_session, host) -> None:
    """update_policy's gates: the update service's drop-in names the gate program in an ExecCondition=, which systemd
    runs before bootc upgrade --apply. A local login (a PAM session of class user, as a console login opens) holds
    the update back, the service is skipped without failing; this SSH session does not count, and without
    NetworkManager the connection is not metered."""
    off = {"skip_metered": False, "skip_user_sessions": False}
    assert lab.module("immutable.hosts.update_policy", off, hosts=[HOST]).ok  # from wherever an earlier run left it
    gates = {"skip_metered": True, "skip_user_sessions": True}
    _checked, first = checked_then_twice(lab, lab_session, "immutable.hosts.update_policy", gates)
    assert first["skip_metered"] is True and first["skip_user_sessions"] is True and first["on_ac_power"] is False
    gate = "/usr/local/libexec/immutable-hosts/update-gate"
    unit = sh(lab_session, "systemctl cat bootc-fetch-apply-updates.service").stdout
    assert f"ExecCondition=/usr/bin/python3 {gate} --skip-metered --skip-user-sessions" in unit, unit
    assert "nothing holds the update back" in sh(lab_session, f"python3 {gate} --skip-metered --skip-user-sessions").stderr
    login = "systemd-run --unit=lab-local-login -p PAMName=login -p User=root -E XDG_SESSION_CLASS=user -E XDG_SESSION_TYPE=tty sleep 600"
    sh(lab_session, login)
    try:
        held = sh(lab_session, f"python3 {gate} --skip-user-sessions", rc=1)
        assert "not now, a user session is active: root (session" in held.stderr, held.stderr
        sh(lab_session, "systemctl start bootc-fetch-apply-updates.service")
        shown = sh(lab_session, "systemctl show -p ConditionResult -p Result bootc-fetch-apply-updates.service").stdout
        assert "ConditionResult=no" in shown and "Result=success" in shown, shown
        journal = sh(lab_session, "journalctl --no-pager -o cat -u bootc-fetch-apply-updates.service").stdout
        assert "not now, a user session is active" in journal and "Skipped due to 'exec-condition'" in journal, journal
    finally:
        sh(lab_session, "systemctl stop lab-local-login.service")
    checked_then_twice(lab, lab_session, "immutable.hosts.update_policy", off)
    assert sh(lab_session, f"test -e {gate}", rc=None).returncode != 0
    assert "ExecCondition" not in sh(lab_session, "systemctl cat bootc-fetch-apply-updates.service").stdout


def test_what_rpm_ostree_layers_is_refused_with_where_it_belongs(lab, lab_session, host) -> None:
    """Packages: bake them into the image. Kernel arguments: compared with the next boot's (converged is no change,
    in check mode too), a change refused with the image's kargs.d named."""
    before = snapshot(lab_session.access(HOST))
    refused = lab.module("immutable.hosts.rpm_ostree_packages", {"name": ["htop"]}, hosts=[HOST])
    assert not refused.ok and "bake packages" in refused.results[0].result["msg"], refused.explain()
    for check in (True, False):
        converged = lab.module("immutable.hosts.kargs", {"args": ["rw", "quiet"]}, hosts=[HOST], check=check)
        assert converged.ok and not converged.results[0].changed, converged.explain()
        assert converged.results[0].result["image_kargs"] == [] and "quiet" in converged.results[0].result["kargs"]
    refused = lab.module("immutable.hosts.kargs", {"args": ["preempt=full"]}, hosts=[HOST])
    assert not refused.ok and "add preempt=full in /usr/lib/bootc/kargs.d" in refused.results[0].result["msg"]
    assert_unchanged(before, snapshot(lab_session.access(HOST)))


def test_deployment_downloads_during_the_day_and_stages_in_a_window(lab, lab_session, host) -> None:
    booted_digest = bootc_status(lab_session)["booted"]["image"]["imageDigest"]
    new_digest = published_digest(lab_session)

    found = lab.module("immutable.hosts.deployment", {"upgrade": "check"}, hosts=[HOST])
    assert found.ok and not found.results[0].changed, found.explain()
    update = found.results[0].result["update"]
    assert found.results[0].result["update_available"] is True and update["digest"] == new_digest != booted_digest

    _checked, first = checked_then_twice(lab, lab_session, "immutable.hosts.deployment", {"upgrade": "download_only"})
    staged = bootc_status(lab_session)["staged"]
    assert staged["downloadOnly"] is True and staged["image"]["imageDigest"] == new_digest
    assert first["reboot_required"] is False and first["staged_locked"] is True

    checked, first = checked_then_twice(lab, lab_session, "immutable.hosts.deployment", {"upgrade": "stage"})
    assert checked["reboot_reasons"] == ["staged-update"] and first["reboot_required"] is True
    staged = bootc_status(lab_session)["staged"]
    assert staged["downloadOnly"] is False and staged["image"]["imageDigest"] == new_digest
    rebooted = lab.module("ansible.builtin.reboot", hosts=[HOST])
    assert rebooted.ok, rebooted.explain()
    assert bootc_status(lab_session)["booted"]["image"]["imageDigest"] == new_digest


def test_deployment_finalizes_a_downloaded_update_in_a_window(lab, lab_session, host) -> None:
    """Downloaded during the day (bootc's downloadOnly), applied in the window by finalize: the task starts bootc
    upgrade --from-downloaded --apply after its result, waits for the new boot and checks what booted."""
    new_digest = published_digest(lab_session)
    found = lab.module("immutable.hosts.deployment", {"upgrade": "download_only"}, hosts=[HOST])
    assert found.ok and found.results[0].changed, found.explain()
    staged = bootc_status(lab_session)["staged"]
    assert staged["downloadOnly"] is True and staged["image"]["imageDigest"] == new_digest
    args = {"finalize": True, "soft_reboot": True, "reboot_timeout": 180}  # no lab deployment can soft-reboot: a reboot
    checked, first = checked_then_twice(lab, lab_session, "immutable.hosts.deployment", args)
    assert checked["finalized"]["digest"] == new_digest and checked["reboot_reasons"] == ["staged-update"]
    assert first["rebooted"] is True and first["finalize_unit"].startswith("immutable-hosts-finalize-")
    assert isinstance(first["soft_reboots"], int) and "--soft-reboot=auto" in json.dumps(first["commands"])
    assert first["booted"]["checksum"] == staged["ostree"]["checksum"] and first["reboot_required"] is False
    status = bootc_status(lab_session)
    assert status["booted"]["image"]["imageDigest"] == new_digest and status["staged"] is None


def test_deployment_rolls_back_with_bootc(lab, lab_session, host) -> None:
    status = bootc_status(lab_session)
    if status["rollback"] is None:
        pytest.skip("needs the upgrade of the previous test (a rollback deployment)")
    _checked, first = checked_then_twice(lab, lab_session, "immutable.hosts.deployment", {"rollback": True})
    assert first["reboot_reasons"] == ["rollback-queued"] and bootc_status(lab_session)["rollbackQueued"] is True
    reverted = sh(lab_session, "bootc rollback").stdout
    assert "Reverting queued rollback state" in reverted and "Next boot: current deployment" in reverted
    assert bootc_status(lab_session)["rollbackQueued"] is False and facts(lab)["reboot_required"] is False
    bad = sh(lab_session, "bootc rollback --soft-reboot=sometimes", rc=2)
    assert "invalid value 'sometimes' for '--soft-reboot" in bad.stderr


def test_bootc_upgrade_as_the_contract_says(lab, lab_session, host) -> None:
    """The simulator's bootc upgrade flags and messages, on a digest published for this test."""
    booted_digest = bootc_status(lab_session)["booted"]["image"]["imageDigest"]
    new_digest = published_digest(lab_session)
    assert f"Update available for: {IMAGE}" in sh(lab_session, "bootc upgrade --check").stdout
    cached = bootc_status(lab_session)["booted"]["cachedUpdate"]
    assert cached["image"] == REFERENCE and cached["architecture"] == "amd64"
    assert cached["imageDigest"] == new_digest != booted_digest
    assert facts(lab)["cached_update"]["digest"] == new_digest

    refused = sh(lab_session, "bootc upgrade --download-only --apply", rc=2)
    assert "the argument '--download-only' cannot be used with '--apply'" in refused.stderr
    assert "unexpected argument '--frobnicate'" in sh(lab_session, "bootc upgrade --frobnicate", rc=2).stderr
    assert bootc_status(lab_session)["staged"] is None

    downloaded = sh(lab_session, "bootc upgrade --download-only").stdout
    assert "Queued for next boot" in downloaded and "Image downloaded, but will not be applied on reboot" in downloaded
    assert bootc_status(lab_session)["staged"]["downloadOnly"] is True
    gathered = facts(lab)
    assert gathered["staged"]["finalization_locked"] is True and gathered["staged_locked"] is True
    assert "Staged update present, not changed" in sh(lab_session, "bootc upgrade --download-only").stdout

    required = sh(lab_session, "bootc upgrade --from-downloaded --soft-reboot=required", rc=1)
    assert "Soft reboot was required but staged deployment is not soft-reboot capable" in required.stderr
    assert bootc_status(lab_session)["staged"]["downloadOnly"] is False  # bootc unlocks before the soft-reboot check
    sh(lab_session, "bootc upgrade --download-only")
    unlocked = sh(lab_session, "bootc upgrade --from-downloaded").stdout
    assert "Staged deployment will now be applied on reboot" in unlocked
    again = sh(lab_session, "bootc upgrade --from-downloaded").stdout
    assert "Staged deployment is already set to apply on reboot" in again
    sh(lab_session, "bootc upgrade --download-only")
    assert "Staged deployment will now be applied on reboot" in sh(lab_session, "bootc upgrade").stdout
    assert facts(lab)["reboot_required"] is True
    assert "Staged update present, not changed" in sh(lab_session, "bootc upgrade --soft-reboot=auto").stdout


HEALTH_STATE = "/var/lib/immutable-hosts/health/state.json"


def health_play(state: str = "present", **variables) -> str:
    return role_play(HOST, "immutable.hosts.health", dict(health_state=state, **variables))


def health_state(lab_session) -> dict | None:
    done = sh(lab_session, f"cat {HEALTH_STATE}", rc=None)
    return json.loads(done.stdout) if done.returncode == 0 else None


def converged_role(lab, lab_session, text: str):
    """Check mode reports changes and changes nothing; the run changes; a second run changes nothing."""
    before = snapshot(lab_session.access(HOST))
    checked = lab.playbook_text(text, hosts=[HOST], check=True, diff=True)
    assert checked.ok and checked.changed(HOST), checked.explain()
    assert_unchanged(before, snapshot(lab_session.access(HOST)))
    first = lab.playbook_text(text, hosts=[HOST], diff=True)
    assert first.ok and first.changed(HOST), first.explain()
    second = lab.playbook_text(text, hosts=[HOST], diff=True)
    assert second.ok and not second.changed_tasks(HOST), [t.name for t in second.changed_tasks(HOST)]
    return first


def test_a_broken_update_rolls_back_on_the_host_by_itself(lab, lab_session, host) -> None:
    """The health role's gate on a bootc-only host: the required check passes on the running deployment only (an
    update that deliberately breaks the host's application). bootc's own update service stages and applies a new
    image with no controller involved; the gate fails that deployment's boots twice, rolls back and reboots, and the
    host runs the deployment it had, with the reason in the state file the facts report."""
    good = bootc_status(lab_session)["booted"]["ostree"]["checksum"]
    check = passes_on(good)
    text = health_play(
        health_required_checks=[{"name": "10-application", "content": check}],
        health_wanted_checks=[
            {"name": "20-disk-space.sh", "content": "test $(df --output=pcent / | tail -1 | tr -dc 0-9) -lt 95"}
        ],
        health_max_failed_boots=2,
    )
    converged_role(lab, lab_session, text)
    assert sh(lab_session, "systemctl is-enabled immutable-hosts-health.service").stdout.strip() == "enabled"
    assert (
        "Managed by Ansible (immutable.hosts.health)"
        in sh(lab_session, "cat /etc/greenboot/check/required.d/10-application.sh").stdout
    )
    state = health_state(lab_session)
    assert state["status"] == "green" and state["healthy_deployments"][0] == f"{good}.0", state
    assert facts(lab)["health"]["status"] == "green" and facts(lab)["health"]["healthy_before"] is True

    before = state.get("last_rollback")
    new_digest = published_digest(lab_session)
    sh(lab_session, "systemctl start --no-block bootc-fetch-apply-updates.service")
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        time.sleep(5)
        state = health_state(lab_session) or {}
        if state.get("last_rollback") not in (None, before) and state["status"] == "green":
            break
    assert state.get("last_rollback") not in (None, before) and state["status"] == "green", state
    status = bootc_status(lab_session)
    assert status["booted"]["ostree"]["checksum"] == good and status["rollback"]["image"]["imageDigest"] == new_digest
    broken = status["rollback"]["ostree"]["checksum"]
    gathered = facts(lab)["health"]
    assert gathered["last_rollback"]["from"] == f"{broken}.0" and gathered["last_rollback"]["failed_boots"] == 2
    assert gathered["last_rollback"]["reason"] == "required check failed: 10-application.sh"
    assert gathered["deployment"] == f"{good}.0" and gathered["status"] == "green" and gathered["action"] == "none"
    journal = sh(lab_session, "journalctl --no-pager -o cat -b -u immutable-hosts-health.service").stdout
    assert f"deployment {good}.0 is healthy" in journal, journal

    # absent: the checks, the unit and the program go; the state stays for the facts
    converged_role(lab, lab_session, health_play("absent"))
    assert not sh(lab_session, "find /etc/greenboot -name '*.sh'").stdout.strip()
    assert sh(lab_session, "test -e /etc/systemd/system/immutable-hosts-health.service", rc=None).returncode != 0
    assert health_state(lab_session)["last_rollback"]["from"] == f"{broken}.0"


def test_bootc_follows_a_tag_by_the_digest_it_has_at_each_run(lab, lab_session, host) -> None:
    """Image mode on a host bootc alone manages: rebase with follow=digest resolves the tag in the registry (skopeo,
    on the host) and switches to name@digest, pinned; a new digest under the tag is the next change. The host goes
    back to following the tag at the end."""
    repository = IMAGE.rsplit(":", 1)[0]
    args = {"image": IMAGE, "follow": "digest", "signature": "unverified"}
    first_digest = published_digest(lab_session)
    checked, switched = checked_then_twice(lab, lab_session, "immutable.hosts.rebase", args)
    assert checked["backend"] == switched["backend"] == "bootc"
    assert switched["origin"].endswith(f"{repository}@{first_digest}"), switched
    staged = bootc_status(lab_session)["staged"]
    assert staged["image"]["image"] == {"image": f"{repository}@{first_digest}", "transport": "registry"}, staged

    # The tag moves: the next run follows the new digest, and a check says so first.
    second_digest = published_digest(lab_session)
    checked, moved = checked_then_twice(lab, lab_session, "immutable.hosts.rebase", args)
    assert moved["origin"].endswith(f"{repository}@{second_digest}") and second_digest != first_digest
    assert bootc_status(lab_session)["staged"]["image"]["image"]["image"] == f"{repository}@{second_digest}"

    back = lab.module("immutable.hosts.rebase", {"image": IMAGE, "signature": "unverified"}, hosts=[HOST])
    assert back.ok and back.results[0].changed, back.explain()
    assert bootc_status(lab_session)["staged"]["image"]["image"] == REFERENCE
