# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deployment housekeeping planned from a parsed ``rpm-ostree status``: pins, cleanup, rollback.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

from ansible_collections.immutable.hosts.plugins.module_utils.rpm_ostree import pick

ROLES = ("booted", "pending", "rollback")
CLEANUP_KINDS = ("pending", "rollback", "base", "repomd")
CLEANUP_FLAGS = {"pending": "-p", "rollback": "-r", "base": "-b", "repomd": "-m"}


class DeploymentError(ValueError):
    pass


def resolve(status: dict, selector: str) -> int:
    """A deployment index from a role name (booted, pending, rollback) or an index given as text."""
    if selector in ROLES:
        deployment = pick(status, selector)
        if deployment is None:
            raise DeploymentError("there is no %s deployment on this host" % selector)
        return deployment["index"]
    if not selector.isdigit():
        raise DeploymentError("deployments are chosen by booted, pending, rollback or an index, not %r" % selector)
    index = int(selector)
    if index >= len(status["deployments"]):
        raise DeploymentError("there is no deployment %d; this host has %d" % (index, len(status["deployments"])))
    return index


def plan_pins(status: dict, pin: list, unpin: list) -> dict:
    """Indexes to pin and to unpin (only those not already so); a staged deployment cannot be pinned."""
    to_pin = sorted({resolve(status, s) for s in pin})
    to_unpin = sorted({resolve(status, s) for s in unpin})
    both = set(to_pin) & set(to_unpin)
    if both:
        raise DeploymentError("deployment %s cannot be both pinned and unpinned" % ", ".join(map(str, sorted(both))))
    for index in to_pin:
        if status["deployments"][index]["staged"]:
            raise DeploymentError("deployment %d is staged; ostree cannot pin a staged deployment (reboot into it first)" % index)
    deployments = status["deployments"]
    pin_now = [i for i in to_pin if not deployments[i]["pinned"]]
    unpin_now = [i for i in to_unpin if deployments[i]["pinned"]]
    before = [d["index"] for d in deployments if d["pinned"]]
    after = sorted((set(before) | set(pin_now)) - set(unpin_now))
    return {"changed": bool(pin_now or unpin_now), "pin": pin_now, "unpin": unpin_now, "before": before, "after": after}


def _removable(status: dict, side: str) -> list:
    booted = status["booted_index"]
    osname = status["osname"]
    result = []
    for deployment in status["deployments"]:
        if deployment["osname"] != osname or deployment["pinned"] or booted is None:
            continue
        if (side == "pending" and deployment["index"] < booted) or (side == "rollback" and deployment["index"] > booted):
            result.append(deployment["index"])
    return result


def plan_cleanup(status: dict, kinds: list) -> dict:
    """Which ``rpm-ostree cleanup`` flags change deployments (pending, rollback) and which prune caches (base, repomd)."""
    unknown = [kind for kind in kinds if kind not in CLEANUP_KINDS]
    if unknown:
        raise DeploymentError("cleanup takes %s, not %s" % (", ".join(CLEANUP_KINDS), ", ".join(unknown)))
    removed = []
    flags = []
    for kind in ("pending", "rollback"):
        if kind in kinds:
            found = _removable(status, kind)
            if found:
                flags.append(CLEANUP_FLAGS[kind])
                removed += found
    caches = [CLEANUP_FLAGS[kind] for kind in ("base", "repomd") if kind in kinds]
    return {"changed": bool(flags), "flags": flags, "cache_flags": caches, "removed": sorted(removed)}


def plan_rollback(status: dict) -> dict:
    """Make the rollback deployment boot next.

    Already queued (a non-staged pending deployment) is no change. A staged deployment must be cleaned up first:
    rpm-ostree refuses to roll back over it.
    """
    pending = pick(status, "pending")
    if pending is not None and not pending["staged"]:
        return {"changed": False, "cleanup_staged": False, "target": pending["index"]}
    rollback = pick(status, "rollback")
    if rollback is None:
        raise DeploymentError("there is no rollback deployment to go back to")
    return {"changed": True, "cleanup_staged": pending is not None, "target": rollback["index"]}
