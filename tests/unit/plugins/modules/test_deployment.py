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
