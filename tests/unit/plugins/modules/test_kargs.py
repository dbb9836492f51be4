"""immutable.hosts.kargs against a sysroot on disk and rpm-ostree answering from the contract's documents."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.immutable.hosts.plugins.modules import kargs
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot

PLAIN = "rpm-ostree-status-plain-silverblue.json"
BOOTED = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
ROLLBACK = "7a22d0feb18d647d7b3598b1ac006c1d27d1202303fe7118628bc4b8e2ecb74f"
STATUS = "rpm-ostree status --json"


@pytest.fixture
def host(tmp_path):
    make_sysroot(tmp_path, [(BOOTED, 0, "root=UUID=6f3b rw rhgb quiet"), (ROLLBACK, 0, "root=UUID=6f3b rw")])
    return tmp_path


def status_after_change() -> str:
    doc = json.loads(fixture_text(PLAIN))
    staged = copy.deepcopy(doc["deployments"][0])
    staged.update({"booted": False, "staged": True, "serial": 1, "id": staged["id"][:-1] + "1"})
    doc["deployments"].insert(0, staged)
    return json.dumps(doc)


def test_converged_host_runs_only_the_status_read(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(PLAIN), "")})
    result = ostree_module(kargs, {"args": ["rw", "quiet"]}, tools)
    assert result["changed"] is False and tools.calls == [STATUS]
    assert result["reboot_required"] is False and result["kargs"] == ["root=UUID=6f3b", "rw", "rhgb", "quiet"]
    assert result["deployment"]["checksum"] == BOOTED


def test_change_is_one_kargs_call_and_reports_the_new_pending_deployment(host, ostree_module):
    tools = Tools(
        {
            STATUS: [(0, fixture_text(PLAIN), ""), (0, status_after_change(), "")],
            "rpm-ostree kargs --unchanged-exit-77 --delete-if-present=quiet --append-if-missing=mitigations=off": (
                0,
                'Changes queued for next boot. Run "systemctl reboot" to start a reboot\n',
                "",
            ),
        }
    )
    result = ostree_module(kargs, {"args": ["root=UUID=6f3b", "rw", "rhgb", "mitigations=off"], "state": "exact"}, tools)
    assert result["changed"] is True
    assert tools.calls[:2] == [
        STATUS,
        "rpm-ostree kargs --unchanged-exit-77 --delete-if-present=quiet --append-if-missing=mitigations=off",
    ]
    assert result["diff"] == {
        "before": {"kargs": ["root=UUID=6f3b", "rw", "rhgb", "quiet"]},
        "after": {"kargs": ["root=UUID=6f3b", "rw", "rhgb", "mitigations=off"]},
    }
    assert result["deployment"]["staged"] is True
    assert result["reboot_reasons"] == ["staged-update", "kargs-changed"]


def test_check_mode_predicts_and_changes_nothing(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(PLAIN), "")})
    result = ostree_module(kargs, {"args": ["quiet"], "state": "absent", "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and tools.calls == [STATUS]
    assert result["diff"]["after"]["kargs"] == ["root=UUID=6f3b", "rw", "rhgb"]
    assert result["reboot_required"] is True and result["reboot_reasons"] == ["kargs-changed"]


def test_staged_deployment_is_compared_through_rpm_ostree_kargs(host, ostree_module):
    tools = Tools(
        {
            STATUS: (0, fixture_text("rpm-ostree-status-layered-staged-pinned.json"), ""),
            "rpm-ostree kargs": (0, "root=UUID=6f3b rw mitigations=off ostree=/ostree/boot.0/fedora/y/0\n", ""),
        }
    )
    result = ostree_module(kargs, {"args": ["mitigations=off"]}, tools)
    assert result["changed"] is False and tools.calls == [STATUS, "rpm-ostree kargs"]


def test_busy_daemon_is_waited_on(host, ostree_module):
    busy = json.loads(fixture_text(PLAIN))
    busy["transaction"] = ["PkgChange", ":1.90", "/org/projectatomic/rpmostree1/fedora"]
    tools = Tools(
        {
            STATUS: [
                (0, json.dumps(busy), ""),
                (0, json.dumps(busy), ""),
                (0, fixture_text(PLAIN), ""),
                (0, status_after_change(), ""),
            ],
            "rpm-ostree kargs --unchanged-exit-77 --append-if-missing=nosmt": (0, "", ""),
        }
    )
    result = ostree_module(kargs, {"args": ["nosmt"], "wait_timeout": 30}, tools)
    assert result["changed"] is True
    assert tools.calls[:4] == [STATUS, STATUS, STATUS, "rpm-ostree kargs --unchanged-exit-77 --append-if-missing=nosmt"]


def test_busy_past_the_timeout_names_the_transaction(host, ostree_module):
    busy = json.loads(fixture_text(PLAIN))
    busy["transaction"] = ["PkgChange", ":1.90", "/org/projectatomic/rpmostree1/fedora"]
    tools = Tools({STATUS: (0, json.dumps(busy), "")})
    result = ostree_module(kargs, {"args": ["nosmt"], "wait_timeout": 5}, tools)
    assert result["failed"] is True and "PkgChange" in result["msg"]
    assert not any(call.startswith("rpm-ostree kargs") for call in tools.calls)


def test_update_driver_is_respected_unless_bypassed(host, ostree_module):
    driven = json.loads(fixture_text(PLAIN))
    driven["update-driver"] = {"driver-name": "Zincati", "driver-sd-unit": "zincati.service"}
    tools = Tools({STATUS: (0, json.dumps(driven), ""), "systemctl is-active zincati.service": (0, "active\n", "")})
    result = ostree_module(kargs, {"args": ["nosmt"]}, tools)
    assert result["failed"] is True and "Zincati" in result["msg"] and "bypass_driver" in result["msg"]
    tools = Tools(
        {
            STATUS: (0, json.dumps(driven), ""),
            "rpm-ostree kargs --unchanged-exit-77 --append-if-missing=nosmt": (0, "", ""),
        }
    )
    assert ostree_module(kargs, {"args": ["nosmt"], "bypass_driver": True}, tools)["changed"] is True


@pytest.mark.parametrize(
    "args",
    [
        {"args": ["ostree=/x"]},
        {"args": ["a\nb"]},
        {"args": ["quiet"], "state": "sometimes"},
        {"args": ["quiet"], "wait_timeout": -1},
        {"args": ["two words"]},
    ],
)
def test_bad_input_fails_before_anything_runs(host, ostree_module, args):
    tools = Tools({})
    result = ostree_module(kargs, args, tools)
    assert result["failed"] is True and tools.calls == []


def test_not_an_ostree_host(tmp_path, ostree_module):
    tools = Tools({})
    result = ostree_module(kargs, {"args": ["quiet"]}, tools)
    assert result["failed"] is True and "not booted through OSTree" in result["msg"] and tools.calls == []
