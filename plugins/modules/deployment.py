#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment
short_description: Upgrade, roll back, pin and clean up the deployments of an rpm-ostree host
version_added: 0.1.0
description:
  - Checks for, downloads or stages an upgrade; queues the rollback deployment; pins and unpins deployments by
    role or index; cleans up pending and rollback deployments and caches.
  - Declarative where it can be. O(pin) and O(unpin) describe a state. O(rollback) is satisfied once a rollback
    is queued. O(upgrade=stage) asks C(rpm-ostree upgrade --check) first, so a host without updates sees no
    transaction.
  - Reads C(rpm-ostree status --json) once. It waits on a busy daemon and respects a registered update driver
    (see O(bypass_driver)).
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.rpm_ostree
author:
  - immutable.hosts contributors (@immutable-hosts)
options:
  upgrade:
    description:
      - V(check) reports whether an update is available and what it is, changing nothing (the answer is in
        RV(update_available) and RV(update)).
      - V(stage) stages the update for the next boot.
      - V(download_only) downloads it without deploying.
      - Unset does not upgrade.
    type: str
    choices: [check, stage, download_only]
  rollback:
    description:
      - Make the rollback deployment boot next (C(rpm-ostree rollback)). A staged deployment is cleaned up first, as
        rpm-ostree requires. Once a rollback is queued, running again changes nothing; after the reboot it is an
        action again.
    type: bool
    default: false
  pin:
    description: Deployments to keep forever, by role (V(booted), V(pending), V(rollback)) or by index.
    type: list
    elements: str
    default: []
  unpin:
    description: Deployments to stop keeping, by role or index.
    type: list
    elements: str
    default: []
  cleanup:
    description:
      - V(pending) removes unpinned deployments that would boot before the booted one (a staged update included),
        V(rollback) unpinned ones after it; both change the host only when such deployments exist.
      - V(base) and V(repomd) prune temporary data and cached metadata. They do not change any deployment, so they
        run whenever listed (except in check mode) and never report a change.
    type: list
    elements: str
    choices: [pending, rollback, base, repomd]
    default: []
  lock_finalization:
    description: Stage the upgrade locked (C(--lock-finalization)), so a plain reboot does not apply it.
    type: bool
    default: false
notes:
  - C(rpm-ostree upgrade --check) is documented upstream as possibly unreliable; its exit code 77 (nothing new) is
    what this module reads.
seealso:
  - module: immutable.hosts.ostree_facts
"""

EXAMPLES = r"""
- name: Is there an update?
  immutable.hosts.deployment:
    upgrade: check
  register: update

- name: Stage it and keep today's deployment around
  immutable.hosts.deployment:
    upgrade: stage
    pin: [booted]
  become: true

- name: Go back to the previous deployment at the next boot
  immutable.hosts.deployment:
    rollback: true
  become: true

- name: Drop a staged update and old rollbacks
  immutable.hosts.deployment:
    cleanup: [pending, rollback]
  become: true
"""

RETURN = r"""
update_available:
  description: Whether C(rpm-ostree upgrade --check) found an update.
  returned: when O(upgrade) is set
  type: bool
  sample: true
update:
  description: The update rpm-ostree found (version, checksum, origin, rpm diff, advisories), or null.
  returned: when O(upgrade) is set
  type: dict
pinned:
  description: Indexes of the pinned deployments after the run (predicted in check mode).
  returned: success
  type: list
  elements: int
  sample: [1]
removed:
  description: Indexes (before the run) of the deployments cleanup removed.
  returned: success
  type: list
  elements: int
  sample: [0]
reboot_required:
  description: Whether the next boot differs from the running system.
  returned: success
  type: bool
  sample: true
reboot_reasons:
  description: Why a reboot is needed, for example V(staged-update), V(rollback-queued).
  returned: success
  type: list
  elements: str
  sample: [rollback-queued]
staged_locked:
  description:
    - Whether a staged deployment waits with its finalization locked; a plain reboot would discard it, so it does
      not count in RV(reboot_required) (see C(ansible_facts.ostree.staged_locked)).
  returned: success
  type: bool
  sample: false
staged_locked_reasons:
  description: What the locked staged deployment would change.
  returned: success
  type: list
  elements: str
  sample: []
deployment:
  description: The deployment that boots next after the run.
  returned: success
  type: dict
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/rpm-ostree, status, --json], [/usr/bin/rpm-ostree, upgrade, --check]]
diff:
  description: Deployments (index, checksum, version, pinned) before and after.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import deployments, rpm_ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree_host import COMMON_ARGUMENT_SPEC, run_module


def summary(status):
    return [
        {
            "index": d["index"],
            "checksum": d["checksum"],
            "version": d["version"],
            "booted": d["booted"],
            "staged": d["staged"],
            "pinned": d["pinned"],
        }
        for d in status["deployments"]
    ]


def predicted_summary(before, plan):
    """What check mode can say of the deployments afterwards: pins and removals (new deployments are not known yet)."""
    pinned = set(plan["pins"]["after"])
    return [dict(item, pinned=item["index"] in pinned) for item in before if item["index"] not in plan["cleanup"]["removed"]]


def look_for_update(host):
    """Ask for an update without deploying (exit 77 means none); the details land in the status's cached update."""
    available = host.run(["upgrade", "--check"], ok_rcs=(0, 77)).rc == 0
    status = host.load()
    update = status["cached_update"] if available else None
    staged = rpm_ostree.pick(status, "staged")
    booted = rpm_ostree.pick(status, "booted") or {}
    return {
        "available": available,
        "update": update,
        "staged": bool(update and staged and staged["base_checksum"] == update["checksum"]),
        "downloaded": bool(update and booted.get("pending_base_checksum") == update["checksum"]),
    }


def apply(host, plan, params):
    if plan["cleanup"]["flags"] or plan["cleanup"]["cache_flags"]:
        host.run(["cleanup", *plan["cleanup"]["flags"], *plan["cleanup"]["cache_flags"]], ok_rcs=(0,))
    if plan["rollback"]["changed"]:
        if plan["rollback"]["cleanup_staged"] and "-p" not in plan["cleanup"]["flags"]:
            host.run(["cleanup", "-p"], ok_rcs=(0,))
        host.run(["rollback"], ok_rcs=(0,))
    bypass = ["--bypass-driver"] if params["bypass_driver"] else []
    if plan["stage"]:
        host.run(["upgrade", "--unchanged-exit-77", *bypass] + (["--lock-finalization"] if params["lock_finalization"] else []))
    if plan["download"]:
        host.run(["upgrade", "--download-only", *bypass], ok_rcs=(0,))
    if plan["pins"]["changed"]:
        # Earlier actions move indexes; pins are resolved again on the status they left.
        status = host.load() if plan["moves_deployments"] else host.status
        pins = deployments.plan_pins(status, params["pin"], params["unpin"])
        if pins["pin"]:
            host.runner.run(["ostree", "admin", "pin", *map(str, pins["pin"])])
        if pins["unpin"]:
            host.runner.run(["ostree", "admin", "pin", "--unpin", *map(str, pins["unpin"])])


def converge(host):
    module = host.module
    params = module.params
    host.require_ostree()
    status = host.load()
    plan = {
        "pins": deployments.plan_pins(status, params["pin"], params["unpin"]),
        "cleanup": deployments.plan_cleanup(status, params["cleanup"]),
        "rollback": deployments.plan_rollback(status) if params["rollback"] else {"changed": False, "cleanup_staged": False},
        "stage": False,
        "download": False,
    }
    before = summary(status)
    acting = (
        plan["pins"]["changed"]
        or plan["cleanup"]["changed"]
        or plan["rollback"]["changed"]
        or params["upgrade"] in ("stage", "download_only")
    )
    if acting or params["upgrade"]:
        host.wait_idle()
    if acting:
        host.refuse_driver()
    extra = {}
    if params["upgrade"]:
        found = look_for_update(host)
        extra = {"update_available": found["available"], "update": found["update"]}
        plan["stage"] = params["upgrade"] == "stage" and found["available"] and not found["staged"]
        plan["download"] = (
            params["upgrade"] == "download_only" and found["available"] and not found["downloaded"] and not found["staged"]
        )
    plan["moves_deployments"] = plan["cleanup"]["changed"] or plan["rollback"]["changed"] or plan["stage"]
    changed = plan["moves_deployments"] or plan["pins"]["changed"] or plan["download"]
    predicted = []
    if module.check_mode:
        predicted = (["rollback-queued"] if plan["rollback"]["changed"] else []) + (["staged-update"] if plan["stage"] else [])
    else:
        apply(host, plan, params)
    after = predicted_summary(before, plan) if module.check_mode else (summary(host.load()) if changed else before)
    host.exit(
        changed,
        {"before": {"deployments": before}, "after": {"deployments": after}},
        predicted_reasons=predicted,
        pinned=plan["pins"]["after"],
        removed=plan["cleanup"]["removed"],
        **extra,
    )


def main():
    argument_spec = dict(
        upgrade=dict(type="str", choices=["check", "stage", "download_only"]),
        rollback=dict(type="bool", default=False),
        pin=dict(type="list", elements="str", default=[]),
        unpin=dict(type="list", elements="str", default=[]),
        cleanup=dict(type="list", elements="str", choices=["pending", "rollback", "base", "repomd"], default=[]),
        lock_finalization=dict(type="bool", default=False),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not (params["upgrade"] or params["rollback"] or params["pin"] or params["unpin"] or params["cleanup"]):
        module.fail_json(msg="nothing to do: set upgrade, rollback, pin, unpin or cleanup")
    if params["rollback"] and params["upgrade"] in ("stage", "download_only"):
        module.fail_json(msg="rollback and upgrade contradict each other; use one per task")
    if params["rollback"] and "rollback" in params["cleanup"]:
        module.fail_json(msg="rollback and cleanup of the rollback deployment contradict each other")
    if params["lock_finalization"] and params["upgrade"] != "stage":
        module.fail_json(msg="lock_finalization applies to upgrade=stage only")
    run_module(module, converge)


if __name__ == "__main__":
    main()
