"""Pins, cleanup and rollback planned on the contract's staged + pinned + rollback layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _deployments as deployments
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._deployments import DeploymentError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def status_of(name: str, edit=None) -> dict:
    doc = json.loads((FIXTURES / name).read_text())
    if edit:
        edit(doc)
    return rpm_ostree.parse_status(doc)


LAYOUT = status_of("rpm-ostree-status-layered-staged-pinned.json")  # 0 staged, 1 booted, 2 pinned rollback
PLAIN = status_of("rpm-ostree-status-plain-silverblue.json")  # 0 booted, 1 rollback


def test_resolve_roles_and_indexes():
    assert [deployments.resolve(LAYOUT, s) for s in ("pending", "booted", "rollback", "2")] == [0, 1, 2, 2]
    for bad in ("staged", "-1", "7", "first"):
        with pytest.raises(DeploymentError):
            deployments.resolve(LAYOUT, bad)
    with pytest.raises(DeploymentError, match="no pending"):
        deployments.resolve(PLAIN, "pending")


def test_pins():
    assert deployments.plan_pins(LAYOUT, ["rollback"], [])["changed"] is False
    plan = deployments.plan_pins(LAYOUT, ["booted"], ["rollback"])
    assert (plan["pin"], plan["unpin"], plan["before"], plan["after"]) == ([1], [2], [2], [1])
    with pytest.raises(DeploymentError, match="staged"):
        deployments.plan_pins(LAYOUT, ["pending"], [])
    with pytest.raises(DeploymentError, match="both"):
        deployments.plan_pins(LAYOUT, ["1"], ["booted"])


def test_cleanup_respects_pins():
    plan = deployments.plan_cleanup(LAYOUT, ["pending", "rollback", "repomd"])
    assert plan["flags"] == ["-p"] and plan["removed"] == [0] and plan["cache_flags"] == ["-m"]
    plain = deployments.plan_cleanup(PLAIN, ["pending", "rollback"])
    assert plain["flags"] == ["-r"] and plain["removed"] == [1]
    assert deployments.plan_cleanup(PLAIN, ["base"]) == {"changed": False, "flags": [], "cache_flags": ["-b"], "removed": []}
    with pytest.raises(DeploymentError):
        deployments.plan_cleanup(PLAIN, ["everything"])


def test_rollback():
    assert deployments.plan_rollback(PLAIN) == {"changed": True, "cleanup_staged": False, "target": 1}
    assert deployments.plan_rollback(LAYOUT) == {"changed": True, "cleanup_staged": True, "target": 2}
    queued = status_of("rpm-ostree-status-plain-silverblue.json", lambda doc: doc["deployments"].reverse())
    assert deployments.plan_rollback(queued)["changed"] is False
    single = status_of("rpm-ostree-status-plain-silverblue.json", lambda doc: doc["deployments"].pop())
    with pytest.raises(DeploymentError, match="no rollback"):
        deployments.plan_rollback(single)
