"""immutable.hosts.deployment with rpm-ostree and ostree answering from the contract's documents."""

from __future__ import annotations

import json

import pytest

from ansible_collections.immutable.hosts.plugins.modules import deployment as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot

STATUS = "rpm-ostree status --json"
PLAIN = "rpm-ostree-status-plain-silverblue.json"
LAYOUT = "rpm-ostree-status-layered-staged-pinned.json"
NO_UPDATES = (
    77,
    "No updates available.\n",
    "Note: --check and --preview may be unreliable.  See https://github.com/coreos/rpm-ostree/issues/1579\n",
)


@pytest.fixture
def host(tmp_path):
    make_sysroot(tmp_path, [])
    return tmp_path


def reversed_plain() -> str:
    doc = json.loads(fixture_text(PLAIN))
    doc["deployments"].reverse()
    return json.dumps(doc)


def with_cached_update(name: str) -> str:
    doc = json.loads(fixture_text(name))
    update = json.loads(fixture_text(LAYOUT))["cached-update"]
    doc["cached-update"] = update
    return json.dumps(doc)


def test_check_for_updates_changes_nothing(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(PLAIN), ""), "rpm-ostree upgrade --check": NO_UPDATES})
    result = ostree_module(module, {"upgrade": "check"}, tools)
    assert result["changed"] is False and result["update_available"] is False and result["update"] is None
    assert tools.calls == [STATUS, "rpm-ostree upgrade --check", STATUS]


def test_stage_runs_upgrade_only_when_check_found_something(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(PLAIN), ""), "rpm-ostree upgrade --check": NO_UPDATES})
    assert ostree_module(module, {"upgrade": "stage"}, tools)["changed"] is False
    assert not any(call.startswith("rpm-ostree upgrade --unchanged") for call in tools.calls)
    tools = Tools(
        {
            STATUS: [(0, fixture_text(PLAIN), ""), (0, with_cached_update(PLAIN), ""), (0, fixture_text(LAYOUT), "")],
            "rpm-ostree upgrade --check": (0, "AvailableUpdate:\n        Version: 41.20241110.0\n", ""),
            "rpm-ostree upgrade --unchanged-exit-77": (0, 'Run "systemctl reboot" to start a reboot\n', ""),
        }
    )
    result = ostree_module(module, {"upgrade": "stage"}, tools)
    assert result["changed"] is True and result["update"]["version"] == "41.20241110.0"
    assert "rpm-ostree upgrade --unchanged-exit-77" in tools.calls
    assert result["deployment"]["staged"] is True


def test_already_staged_update_is_no_change(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(LAYOUT), ""), "rpm-ostree upgrade --check": (0, "AvailableUpdate:\n", "")})
    result = ostree_module(module, {"upgrade": "stage"}, tools)
    assert result["changed"] is False and result["update_available"] is True


def test_rollback_over_a_staged_deployment_cleans_it_up_first(host, ostree_module):
    tools = Tools(
        {
            STATUS: [(0, fixture_text(LAYOUT), ""), (0, reversed_plain(), "")],
            "rpm-ostree cleanup -p": (0, "Deployments unchanged.\n", ""),
            "rpm-ostree rollback": (
                0,
                "Moving '7a22d0feb18d647d7b3598b1ac006c1d27d1202303fe7118628bc4b8e2ecb74f.0' to be first deployment\n",
                "",
            ),
        }
    )
    result = ostree_module(module, {"rollback": True}, tools)
    assert result["changed"] is True and tools.calls[1:3] == ["rpm-ostree cleanup -p", "rpm-ostree rollback"]
    assert "rollback-queued" in result["reboot_reasons"]


def test_rollback_already_queued_is_no_change(host, ostree_module):
    tools = Tools({STATUS: (0, reversed_plain(), "")})
    result = ostree_module(module, {"rollback": True}, tools)
    assert result["changed"] is False and tools.calls == [STATUS]


def test_pin_in_check_mode_predicts_and_runs_nothing(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(LAYOUT), "")})
    result = ostree_module(module, {"pin": ["booted"], "unpin": ["2"], "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and result["pinned"] == [1] and tools.calls == [STATUS]
    assert [d["pinned"] for d in result["diff"]["after"]["deployments"]] == [False, True, False]


def test_pin_uses_ostree_admin(host, ostree_module):
    tools = Tools(
        {
            STATUS: (0, fixture_text(PLAIN), ""),
            "ostree admin pin 0": (0, "Deployment 0 is now pinned\n", ""),
        }
    )
    result = ostree_module(module, {"pin": ["booted"]}, tools)
    assert result["changed"] is True and "ostree admin pin 0" in tools.calls


def test_cleanup_of_nothing_is_no_change(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(PLAIN), "")})
    result = ostree_module(module, {"cleanup": ["pending"]}, tools)
    assert result["changed"] is False and tools.calls == [STATUS]


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"rollback": True, "upgrade": "stage"},
        {"rollback": True, "upgrade": "download_only"},
        {"rollback": True, "cleanup": ["rollback"]},
        {"lock_finalization": True, "upgrade": "check"},
        {"lock_finalization": True, "rollback": True},
        {"lock_finalization": True},
        {"cleanup": ["everything"]},
        {"cleanup": ["pending", "all"]},
        {"upgrade": "now"},
        {"upgrade": "stage", "wait_timeout": -1},
        {"pin": ["booted"], "wait_timeout": "soon"},
        {"rollback": "perhaps"},
        {"pin": "booted", "unpin": "booted", "bogus": 1},
        {"upgrade": ["stage"]},
        {"cleanup": "pending; reboot"},
        {"finalize": True, "upgrade": "stage"},
        {"finalize": True, "rollback": True},
        {"finalize": True, "lock_finalization": True},
        {"finalize": True, "reboot_timeout": 0},
        {"soft_reboot": True, "upgrade": "stage"},
    ],
)
def test_bad_input_fails_before_anything_runs(host, ostree_module, args):
    tools = Tools({})
    result = ostree_module(module, args, tools)
    assert result["failed"] is True and tools.calls == []


@pytest.mark.parametrize("args", [{"pin": ["pending"]}, {"pin": ["9"]}, {"unpin": ["first"]}])
def test_bad_selectors_fail_after_the_status_read_only(host, ostree_module, args):
    tools = Tools({STATUS: (0, fixture_text(LAYOUT), "")})
    result = ostree_module(module, args, tools)
    assert result["failed"] is True and tools.calls == [STATUS]


# --- finalize: the locked staged deployment applied by a reboot, started after the result ---------------------------

BOOT_ID = "0b3c1f4e-5a77-4c0e-9d55-2f4bb8a1c2d3"
NOW = 1764942000


def locked_layout(locked: bool = True) -> str:
    doc = json.loads(fixture_text(LAYOUT))
    doc["deployments"][0]["finalization-locked"] = locked
    return json.dumps(doc)


def scheduled(*argv: str) -> str:
    return " ".join(
        [
            "systemd-run",
            "--unit=immutable-hosts-finalize-%d" % NOW,
            "--description=immutable.hosts: finalize the staged deployment and reboot",
            "--on-active=3",
            "--timer-property=AccuracySec=100ms",
            "--setenv=LC_ALL=C",
            "--setenv=RPMOSTREE_CLIENT_ID=immutable.hosts",
            "--",
            *argv,
        ]
    )


@pytest.fixture
def booted_host(host, monkeypatch):
    (host / "proc/sys/kernel/random").mkdir(parents=True)
    (host / "proc/sys/kernel/random/boot_id").write_text(BOOT_ID + "\n")
    monkeypatch.setattr(module_time(), "time", lambda: NOW)
    return host


def module_time():
    from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _deployments

    return _deployments.time


def test_finalize_in_check_mode_predicts_the_reboot_and_runs_nothing(booted_host, ostree_module):
    tools = Tools({STATUS: (0, locked_layout(), "")})
    result = ostree_module(module, {"finalize": True, "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and tools.calls == [STATUS]
    assert result["finalized"]["checksum"] == "b8eb4a426765983e1998d31facd5cccd8975e0b0ea9a97298fcc7e5f80a76821"
    assert result["reboot_required"] is True and result["reboot_reasons"][0] == "staged-update"
    assert result["staged_locked"] is False and "rebooting" not in result
    assert result["diff"]["before"]["deployments"][0]["staged"] is True
    assert result["diff"]["after"]["deployments"][0]["booted"] is True
    assert not any(d["staged"] for d in result["diff"]["after"]["deployments"])


def test_finalize_names_the_checksum_read_and_starts_after_the_result(booted_host, ostree_module):
    finalize = scheduled(
        "/usr/bin/rpm-ostree", "finalize-deployment", "3a92051fc7a8a1e684f136f36a3d53135c3a8a3bce4c401e1d0f9f36c5565271"
    )
    tools = Tools(
        {STATUS: (0, locked_layout(), ""), finalize: (0, "Running timer as unit: x.timer\n", "")},
        present=("rpm-ostree", "ostree", "systemctl", "systemd-run"),
    )
    result = ostree_module(module, {"finalize": True}, tools)
    assert result["changed"] is True and tools.calls == [STATUS, finalize]
    assert result["rebooting"] is True and result["boot_id"] == BOOT_ID
    assert result["finalize_unit"] == "immutable-hosts-finalize-%d.service" % NOW
    assert result["reboot_required"] is True


@pytest.mark.parametrize("status", [fixture_text(PLAIN), locked_layout(False)])
def test_finalize_without_a_locked_staged_deployment_is_no_change(booted_host, ostree_module, status):
    tools = Tools({STATUS: (0, status, "")})
    result = ostree_module(module, {"finalize": True}, tools)
    assert result["changed"] is False and result["finalized"] is None and tools.calls == [STATUS]


# --- a bootc-only host (no rpm-ostree): bootc's upgrade, download-only and rollback ----------------------------------

BOOTC_STATUS = "bootc status --format=json"
BOOTC_HOST = "bootc-status-container-host.json"
NEW_DIGEST = "sha256:86078910da9270bf5cb035d5f3be39cb657341e797aa8b26b4fdf9caee686024"


def bootc_doc(staged: str = "none", cached: bool = False, rollback_queued: bool = False) -> str:
    """The contract's container host: staged ``none``, ``locked`` (downloadOnly) or ``unlocked``; with the update
    bootc upgrade --check found (the staged image) in the booted entry's cachedUpdate."""
    doc = json.loads(fixture_text(BOOTC_HOST))
    status = doc["status"]
    update = status["staged"]["image"]
    if staged == "none":
        status["staged"] = None
    else:
        status["staged"]["downloadOnly"] = staged == "locked"
    if cached:
        status["booted"]["cachedUpdate"] = update
    status["rollbackQueued"] = rollback_queued
    return json.dumps(doc)


def bootc_tools(answers: dict) -> Tools:
    return Tools(answers, present=("bootc", "ostree", "systemctl"))


def test_bootc_only_check_reads_the_cached_update(host, ostree_module):
    tools = bootc_tools(
        {
            BOOTC_STATUS: [(0, bootc_doc(), ""), (0, bootc_doc(cached=True), "")],
            "bootc upgrade --check": (0, "Update available\n", ""),
        }
    )
    result = ostree_module(module, {"upgrade": "check"}, tools)
    assert result["changed"] is False and result["update_available"] is True, result
    assert result["update"]["digest"] == NEW_DIGEST and result["update"]["version"] == "41.20241117.0"
    assert tools.calls == [BOOTC_STATUS, "bootc upgrade --check", BOOTC_STATUS]
    assert not any("rpm-ostree" in call for call in tools.calls)


def test_bootc_only_download_then_stage_unlocks(host, ostree_module, capsys):
    checks = {"bootc upgrade --check": (0, "Update available\n", "")}
    # download-only: staged, locked; a second run is no change
    tools = bootc_tools(
        {
            **checks,
            BOOTC_STATUS: [(0, bootc_doc(), ""), (0, bootc_doc(cached=True), ""), (0, bootc_doc("locked", cached=True), "")],
            "bootc upgrade --download-only": (0, "Image downloaded, but will not be applied on reboot\n", ""),
        }
    )
    result = ostree_module(module, {"upgrade": "download_only"}, tools)
    assert result["changed"] is True and "bootc upgrade --download-only" in tools.calls
    assert result["reboot_required"] is False and result["staged_locked"] is True, result
    tools = bootc_tools({**checks, BOOTC_STATUS: (0, bootc_doc("locked", cached=True), "")})
    assert ostree_module(module, {"upgrade": "download_only"}, tools)["changed"] is False
    # stage on the downloaded deployment: bootc upgrade unlocks it (no new download); then converged
    tools = bootc_tools(
        {
            **checks,
            BOOTC_STATUS: [
                (0, bootc_doc("locked", cached=True), ""),
                (0, bootc_doc("locked", cached=True), ""),
                (0, bootc_doc("unlocked", cached=True), ""),
            ],
            "bootc upgrade": (0, "Staged deployment will now be applied on reboot\n", ""),
        }
    )
    result = ostree_module(module, {"upgrade": "stage"}, tools)
    assert result["changed"] is True and result["reboot_required"] is True and "staged-update" in result["reboot_reasons"], result
    tools = bootc_tools({**checks, BOOTC_STATUS: (0, bootc_doc("unlocked", cached=True), "")})
    assert ostree_module(module, {"upgrade": "stage"}, tools)["changed"] is False


def test_bootc_only_rollback_and_refusals(host, ostree_module):
    tools = bootc_tools(
        {
            BOOTC_STATUS: [(0, bootc_doc(), ""), (0, bootc_doc(rollback_queued=True), "")],
            "bootc rollback": (0, "Next boot: rollback deployment\n", ""),
        }
    )
    result = ostree_module(module, {"rollback": True}, tools)
    assert result["changed"] is True and "rollback-queued" in result["reboot_reasons"]
    tools = bootc_tools({BOOTC_STATUS: (0, bootc_doc(rollback_queued=True), "")})
    assert ostree_module(module, {"rollback": True}, tools)["changed"] is False
    for args, words in (({"pin": ["booted"]}, "pin and unpin are rpm-ostree's"), ({"cleanup": ["rollback"]}, "cleanup are")):
        tools = bootc_tools({})
        refused = ostree_module(module, args, tools)
        assert refused["failed"] is True and words in refused["msg"] and tools.calls == [], refused


@pytest.mark.parametrize(
    "name, args",
    [
        ("rpm_ostree_packages", {"name": ["htop"]}),
        ("initramfs", {"regenerate": True}),
    ],
)
def test_what_rpm_ostree_layers_is_refused_on_a_bootc_only_host_with_where_it_belongs(host, ostree_module, name, args):
    import importlib

    unit_module = importlib.import_module("ansible_collections.immutable.hosts.plugins.modules." + name)
    tools = bootc_tools({})
    result = ostree_module(unit_module, args, tools)
    assert result["failed"] is True and tools.calls == [], result
    assert "bootc manages it" in result["msg"] and "into the image" in result["msg"] and "kargs.d" in result["msg"]


def test_bootc_only_an_update_staged_is_found_when_check_reports_nothing_new(host, ostree_module):
    """Once the update is staged, bootc upgrade --check finds no new image and leaves no cachedUpdate: the staged
    image is the update, already staged (no change), or only downloaded (stage unlocks it)."""
    checks = {"bootc upgrade --check": (0, "No changes in: quay.io/fedora/fedora-silverblue:41\n", "")}
    tools = bootc_tools({**checks, BOOTC_STATUS: (0, bootc_doc("unlocked"), "")})
    result = ostree_module(module, {"upgrade": "stage"}, tools)
    assert result["changed"] is False and result["update_available"] is True and result["update"]["digest"] == NEW_DIGEST
    tools = bootc_tools({**checks, BOOTC_STATUS: (0, bootc_doc("locked"), ""), "bootc upgrade": (0, "", "")})
    checked = run_checked(ostree_module, {"upgrade": "stage"}, tools)
    assert checked["changed"] is True and tools.calls == [BOOTC_STATUS, "bootc upgrade --check", BOOTC_STATUS]


def run_checked(ostree_module, args, tools):
    return ostree_module(module, dict(args, _ansible_check_mode=True), tools)


BOOTC_BOOTED = "5a6e2cbff81e83761b5c224de688f8059d720f99ba66c09476d96d745ac4a443"
BOOTC_STAGED = "c5c8025e044b3936bb9c7e7b464b3383f5a642e4e81f2a06f9e9a6ee12a17697"


def test_bootc_only_kargs_compares_the_next_boot_and_refuses_a_change_with_where_it_belongs(tmp_path, ostree_module):
    """The next boot's arguments (the staged entry's BLS options) compared as with rpm-ostree: converged is no change,
    and the result names what the image's kargs.d carries (those for another architecture left out); a change is
    refused, naming the file it belongs in."""
    from ansible_collections.immutable.hosts.plugins.modules import kargs as kargs_module

    make_sysroot(tmp_path, [(BOOTC_STAGED, 0, "root=UUID=6f3b rw console=ttyS0 quiet"), (BOOTC_BOOTED, 0, "root=UUID=6f3b rw")])
    kargs_d = tmp_path / "ostree/deploy/fedora/deploy" / ("%s.0" % BOOTC_STAGED) / "usr/lib/bootc/kargs.d"
    kargs_d.mkdir(parents=True)
    (kargs_d / "10-console.toml").write_text('kargs = ["console=ttyS0", "quiet"]  # serial console\n')
    (kargs_d / "20-arm.toml").write_text('kargs = ["nosmt"]\nmatch-architectures = ["aarch64"]\n')
    status = (0, bootc_doc("unlocked"), "")
    tools = bootc_tools({BOOTC_STATUS: status})
    result = ostree_module(kargs_module, {"args": ["quiet", "rw"]}, tools)
    assert result["changed"] is False and result["image_kargs"] == ["console=ttyS0", "quiet"], result
    assert tools.calls == [BOOTC_STATUS]
    tools = bootc_tools({BOOTC_STATUS: status})
    refused = ostree_module(kargs_module, {"args": ["preempt=full", "quiet"], "state": "present"}, tools)
    assert refused["failed"] is True and "add preempt=full in /usr/lib/bootc/kargs.d/*.toml" in refused["msg"], refused
    tools = bootc_tools({BOOTC_STATUS: status})
    refused = ostree_module(kargs_module, {"args": ["console"], "state": "absent"}, tools)
    assert "remove console=ttyS0" in refused["msg"]


def test_bootc_only_finalize_applies_the_downloaded_update(booted_host, ostree_module):
    finalize = scheduled("/usr/bin/bootc", "upgrade", "--from-downloaded", "--apply")
    tools = Tools(
        {BOOTC_STATUS: (0, bootc_doc("locked"), ""), finalize: (0, "", "")},
        present=("bootc", "ostree", "systemctl", "systemd-run"),
    )
    checked = ostree_module(module, {"finalize": True, "_ansible_check_mode": True}, tools)
    assert checked["changed"] is True and tools.calls == [BOOTC_STATUS]
    assert checked["finalized"]["digest"] == NEW_DIGEST and checked["reboot_reasons"] == ["staged-update"]
    result = ostree_module(module, {"finalize": True}, tools)
    assert result["changed"] is True and tools.calls[-1] == finalize and result["rebooting"] is True
    tools = bootc_tools({BOOTC_STATUS: (0, bootc_doc("unlocked"), "")})
    assert ostree_module(module, {"finalize": True}, tools)["changed"] is False


def test_bootc_only_finalize_can_soft_reboot(booted_host, ostree_module):
    finalize = scheduled("/usr/bin/bootc", "upgrade", "--from-downloaded", "--apply", "--soft-reboot=auto")
    count = "systemctl show --property=SoftRebootsCount --value"
    tools = Tools(
        {BOOTC_STATUS: (0, bootc_doc("locked"), ""), count: (0, "2\n", ""), finalize: (0, "", "")},
        present=("bootc", "ostree", "systemctl", "systemd-run"),
    )
    result = ostree_module(module, {"finalize": True, "soft_reboot": True}, tools)
    assert tools.calls == [BOOTC_STATUS, count, finalize] and result["soft_reboots"] == 2


def test_rpm_ostree_has_no_soft_reboot(booted_host, ostree_module):
    tools = Tools({STATUS: (0, locked_layout(), "")})
    result = ostree_module(module, {"finalize": True, "soft_reboot": True}, tools)
    assert result["failed"] is True and "rpm-ostree finalize-deployment reboots" in result["msg"] and tools.calls == []
