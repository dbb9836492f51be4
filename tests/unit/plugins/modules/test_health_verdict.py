"""immutable.hosts.health_verdict: the gate's state file and the booted deployment, judged for a rollout."""

from __future__ import annotations

import json

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree._health import judge
from ansible_collections.immutable.hosts.plugins.modules import health_verdict as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot

OLD = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
NEW = "7a22d0feb18d647d7b3598b1ac006c1d27d1202303fe7118628bc4b8e2ecb74f"
EARLIER = "cf95f674e208c245d56d0e1e669cd0843e1a9bc0046ba96db48c0b3ca17a7281.0"


def state(deployment: str, status: str, action: str = "none", rolled_from: str | None = None) -> dict:
    return {
        "status": status,
        "deployment": deployment,
        "action": action,
        "last_rollback": {"from": rolled_from} if rolled_from else None,
    }


@pytest.mark.parametrize(
    ("verdict", "booted", "outcome"),
    [
        (None, NEW + ".0", "no-gate"),
        ({"status": "unreadable"}, NEW + ".0", "pending"),
        # the gate has not run in this boot yet: its verdict is still the old deployment's
        (state(OLD + ".0", "green"), NEW + ".0", "pending"),
        (state(NEW + ".0", "green"), NEW + ".0", "green"),
        # failed boot 1 of N: the gate reboots the host to try again
        (state(NEW + ".0", "red", "reboot"), NEW + ".0", "pending"),
        # the rollback is queued and the host is about to reboot into it
        (state(NEW + ".0", "red", "rollback"), NEW + ".0", "pending"),
        (state(NEW + ".0", "red", "none"), NEW + ".0", "red"),
        (state(NEW + ".0", "red", "rollback-failed"), NEW + ".0", "red"),
        # back on the old deployment, not yet judged again, then judged with this update's rollback on record
        (state(NEW + ".0", "red", "rollback", NEW + ".0"), OLD + ".0", "pending"),
        (state(OLD + ".0", "green", "none", NEW + ".0"), OLD + ".0", "rolled-back"),
        # an old rollback is not this update's
        (state(OLD + ".0", "green", "none", EARLIER), OLD + ".0", "pending"),
    ],
)
def test_what_a_rollout_makes_of_the_gate(verdict, booted, outcome):
    assert judge(verdict, booted, before=OLD + ".0", previous_rollback=EARLIER) == outcome


def test_the_module_reads_the_facts_it_judges(tmp_path, ostree_module):
    make_sysroot(tmp_path, [(OLD, 0, "root=UUID=6f3b rw"), (NEW, 0, "root=UUID=6f3b rw")])
    tools = Tools({"rpm-ostree status --json": (0, fixture_text("rpm-ostree-status-plain-silverblue.json"), "")})
    result = ostree_module(module, {"before": NEW + ".0"}, tools)
    assert result["changed"] is False and result["outcome"] == "no-gate" and result["final"] is True
    assert result["booted"] == OLD + ".0" and result["health"] is None
    path = tmp_path / "var/lib/immutable-hosts/health/state.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dict(state(OLD + ".0", "green", "none", NEW + ".0"), healthy_deployments=[OLD + ".0"])))
    result = ostree_module(module, {"before": OLD + ".0"}, tools)
    assert result["outcome"] == "rolled-back" and result["health"]["last_rollback"]["from"] == NEW + ".0"
    assert ostree_module(module, {"timeout": -1}, Tools({}))["failed"] is True
