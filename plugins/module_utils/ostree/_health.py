# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The on-host health gate's verdict (the role immutable.hosts.health writes it at every boot), as the facts report it
and as a rollout judges it: :data:`UNIT` is the module immutable.hosts.health_verdict, whose action plugin asks again
while the gate reboots the host.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan

# The state file of the boot-time health gate the role immutable.hosts.health installs.
HEALTH_STATE = "/var/lib/immutable-hosts/health/state.json"
HEALTH_STATUSES = ("green", "red")
HEALTH_ACTIONS = ("none", "reboot", "rollback", "rollback-failed")


def _strings(value, limit: int = 64) -> list:
    return [item for item in value if isinstance(item, str)][:limit] if isinstance(value, list) else []


def _text(value, limit: int = 512) -> Optional[str]:
    return value[:limit] if isinstance(value, str) else None


def _count(value) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_health(text: Optional[str]) -> Optional[dict]:
    """The health gate's last verdict from its state file: what the facts report, each field checked for its type
    (the file is data on the host, never trusted further); None without the file."""
    if text is None:
        return None
    try:
        state = json.loads(text)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        return {"status": "unreadable"}
    rollback = state.get("last_rollback")
    last = None
    if isinstance(rollback, dict):
        last = {
            "from": _text(rollback.get("from")),
            "at": _text(rollback.get("at")),
            "reason": _text(rollback.get("reason")),
            "failed_boots": _count(rollback.get("failed_boots")),
        }
    return {
        "status": state.get("status") if state.get("status") in HEALTH_STATUSES else "unknown",
        "deployment": _text(state.get("deployment")),
        "checked_at": _text(state.get("checked_at")),
        "failures": _strings(state.get("failures")),
        "wanted_failures": _strings(state.get("wanted_failures")),
        "failed_boots": _count(state.get("failed_boots")),
        "max_failed_boots": _count(state.get("max_failed_boots")),
        "action": state.get("action") if state.get("action") in HEALTH_ACTIONS else None,
        "healthy_before": _text(state.get("deployment")) in _strings(state.get("healthy_deployments")),
        "last_rollback": last,
    }


# What a rollout learns from the gate about the deployment it rebooted into.
OUTCOMES = ("green", "red", "rolled-back", "pending", "no-gate")


def judge(state: Optional[dict], booted: str, before: Optional[str] = None, previous_rollback: Optional[str] = None) -> str:
    """The gate's outcome for the deployment the host booted after an update from ``before``.

    ``green``: the new deployment passed. ``red``: it failed and the gate does nothing more (it was healthy once, or
    cannot roll back). ``rolled-back``: the gate rolled it back and the host runs ``before`` again, judged after the
    rollback (a rollback other than ``previous_rollback``, the last one before the update). ``pending``: the gate has
    not judged yet, or is rebooting the host (to try again, or into the rollback). ``no-gate``: no state file.
    """
    if state is None:
        return "no-gate"
    if state.get("status") not in HEALTH_STATUSES:
        return "pending"
    judged, action = state.get("deployment"), state.get("action")
    if before is None or booted != before:
        if judged != booted or action in ("reboot", "rollback"):
            return "pending"
        return "green" if state["status"] == "green" else "red"
    rolled_from = (state.get("last_rollback") or {}).get("from")
    if judged == before and rolled_from and rolled_from != previous_rollback:
        return "rolled-back"
    return "pending"


class HealthVerdictUnit:
    """immutable.hosts.health_verdict: reads the gate's state and the booted deployment, never changes anything."""

    ARGUMENT_SPEC = dict(
        before=dict(type="str"),
        previous_rollback=dict(type="str"),
        timeout=dict(type="int", default=0),
    )
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, _host) -> dict:
        if params["timeout"] < 0:
            raise HostsError("timeout must be 0 (read once) or more seconds")
        return params

    def read(self, host, desired: dict) -> dict:
        from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _facts as facts

        gathered = facts.gather(host)
        booted = gathered.get("booted")
        if not gathered["is_ostree"] or not booted:
            raise HostsError("this host was not booted through OSTree; there is no deployment to judge")
        return {"booted": "%s.%d" % (booted["checksum"], booted["serial"]), "health": gathered["health"]}

    def plan(self, current: dict, desired: dict) -> Plan:
        outcome = judge(current["health"], current["booted"], desired["before"], desired["previous_rollback"])
        result = {
            "booted": current["booted"],
            "health": current["health"],
            "outcome": outcome,
            "final": outcome != "pending",
        }
        return Plan(changed=False, diff=None, result=result)


UNIT = HealthVerdictUnit()
