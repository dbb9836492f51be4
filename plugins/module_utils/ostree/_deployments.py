# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deployment housekeeping planned from a parsed ``rpm-ostree status``: pins, cleanup, rollback.

On a host without rpm-ostree that bootc manages (an image-mode system), the same options are bootc's: ``upgrade``
is ``bootc upgrade --check``, ``bootc upgrade`` or ``bootc upgrade --download-only`` (a finalization-locked staged
deployment, bootc's ``downloadOnly``), an upgrade staged on a download-only deployment of the same digest unlocks it
(``bootc upgrade``), and ``rollback`` is ``bootc rollback``; pins and cleanup stay rpm-ostree's.

``finalize`` applies a staged deployment that waits with its finalization locked (rpm-ostree's
``--lock-finalization``, bootc's download-only), and so reboots: ``rpm-ostree finalize-deployment CHECKSUM`` (the
checksum read, so that no other deployment is ever applied) or ``bootc upgrade --from-downloaded --apply``.  The
command runs in a transient systemd unit a few seconds after the module returned its result; the action plugin of
the same name waits for the host to come back and checks what it booted.

The planning functions are pure; :data:`UNIT` is the module immutable.hosts.deployment.  Standard library only,
Python 3.9+.
"""

from __future__ import annotations

import time

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _bootc as bootc
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._status import pick

ROLES = ("booted", "pending", "rollback")
CLEANUP_KINDS = ("pending", "rollback", "base", "repomd")
CLEANUP_FLAGS = {"pending": "-p", "rollback": "-r", "base": "-b", "repomd": "-m"}


class DeploymentError(HostsError, ValueError):
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


# --- bootc ------------------------------------------------------------------------------------------------------------


def bootc_summary(status: dict) -> list:
    return [
        {
            "index": index,
            "checksum": entry["checksum"],
            "version": (entry["image"] or {}).get("version"),
            "digest": (entry["image"] or {}).get("digest"),
            "booted": entry["role"] == "booted",
            "staged": entry["role"] == "staged",
            "pinned": entry["pinned"],
            "download_only": entry["download_only"],
        }
        for index, entry in enumerate(bootc.boot_order(status))
    ]


def bootc_update(status: dict) -> dict:
    """The update after ``bootc upgrade --check``: the booted entry's ``cachedUpdate`` when it names an image other
    than the booted one, else a staged image other than the booted one (once an update is staged, bootc finds
    nothing new to report); and whether it is staged already (applied at the next boot) or only downloaded (staged
    with ``downloadOnly``)."""
    booted, staged = status.get("booted") or {}, status.get("staged")
    booted_digest = (booted.get("image") or {}).get("digest")
    staged_image = (staged or {}).get("image") or {}
    found = None
    for candidate in (booted.get("cached_update"), staged_image):
        if candidate and candidate.get("digest") and candidate["digest"] != booted_digest:
            found = candidate
            break
    same = bool(found and staged and staged_image.get("digest") == found["digest"])
    update = None
    if found:
        update = {key: found.get(key) for key in ("digest", "version", "timestamp", "architecture")}
        update["image"] = (found.get("image") or {}).get("canonical")
    return {
        "available": found is not None,
        "update": update,
        "staged": same and not staged["download_only"],
        "downloaded": same and staged["download_only"],
    }


def plan_bootc_rollback(status: dict) -> dict:
    """bootc rollback swaps the boot order (and discards a staged deployment): already queued is no change."""
    if status["rollback_queued"] and not status.get("staged"):
        return {"changed": False}
    if not status.get("rollback"):
        raise DeploymentError("there is no rollback deployment to go back to")
    return {"changed": True}


def plan_finalize(status: dict) -> dict:
    """rpm-ostree: finalize the staged deployment when its finalization is locked; an unlocked one boots at the next
    reboot anyway, and nothing staged is nothing to do."""
    staged = pick(status, "staged")
    if staged is None or not staged["finalization_locked"]:
        return {"changed": False, "staged": staged is not None}
    return {
        "changed": True,
        "staged": True,
        "checksum": staged["base_checksum"],
        "deployment": {key: staged.get(key) for key in ("checksum", "version")},
    }


def plan_bootc_finalize(status: dict) -> dict:
    """bootc: apply the staged deployment that was only downloaded (``downloadOnly``)."""
    staged = status.get("staged")
    if not staged or not staged["download_only"]:
        return {"changed": False, "staged": bool(staged)}
    image = staged.get("image") or {}
    return {
        "changed": True,
        "staged": True,
        "deployment": {"checksum": staged["checksum"], "version": image.get("version"), "digest": image.get("digest")},
    }


# The transient unit the finalize command runs in, and how long after the module's result it starts.
FINALIZE_UNIT = "immutable-hosts-finalize-%d"
FINALIZE_DELAY = 3
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def finalize_argv(backend: str, finalize: dict, soft_reboot: bool = False) -> list:
    if backend == "bootc":
        # --soft-reboot=auto: a soft reboot where the new deployment allows one, a reboot otherwise
        return ["bootc", "upgrade", "--from-downloaded", "--apply"] + (["--soft-reboot=auto"] if soft_reboot else [])
    return ["rpm-ostree", "finalize-deployment", finalize["checksum"]]


def scheduled(unit: str, argv: list, delay: int = FINALIZE_DELAY) -> list:
    """``systemd-run`` starting ``argv`` as a transient service ``delay`` seconds from now, in the C locale."""
    return [
        "systemd-run",
        "--unit=%s" % unit,
        "--description=immutable.hosts: finalize the staged deployment and reboot",
        "--on-active=%d" % delay,
        "--timer-property=AccuracySec=100ms",
        "--setenv=LC_ALL=C",
        "--setenv=RPMOSTREE_CLIENT_ID=immutable.hosts",
        "--",
        *argv,
    ]


BOOTC_REFUSED = {
    "pin": "pin and unpin",
    "unpin": "pin and unpin",
    "cleanup": "cleanup",
}


# --- the unit ----------------------------------------------------------------------------------------------------------


def summary(status: dict) -> list:
    return [
        {key: d[key] for key in ("index", "checksum", "version", "booted", "staged", "pinned")} for d in status["deployments"]
    ]


def predicted_summary(before: list, plan: dict) -> list:
    """What check mode can say of the deployments afterwards: pins and removals (new deployments are not known yet)."""
    pinned = set(plan["pins"]["after"])
    return [dict(item, pinned=item["index"] in pinned) for item in before if item["index"] not in plan["cleanup"]["removed"]]


def finalized_entry(item: dict) -> dict:
    """A deployment as the reboot a finalize starts leaves it: the staged one booted, unlocked."""
    entry = dict(item, booted=item["staged"], staged=False)
    if "download_only" in entry:
        entry["download_only"] = False
    return entry


class DeploymentUnit:
    """immutable.hosts.deployment: upgrades checked, downloaded or staged, the rollback queued, pins, cleanup."""

    ARGUMENT_SPEC = dict(
        upgrade=dict(type="str", choices=["check", "stage", "download_only"]),
        rollback=dict(type="bool", default=False),
        pin=dict(type="list", elements="str", default=[]),
        unpin=dict(type="list", elements="str", default=[]),
        cleanup=dict(type="list", elements="str", choices=list(CLEANUP_KINDS), default=[]),
        lock_finalization=dict(type="bool", default=False),
        finalize=dict(type="bool", default=False),
        soft_reboot=dict(type="bool", default=False),
        reboot_timeout=dict(type="int", default=900),
        **reader.COMMON_ARGUMENT_SPEC,
    )
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, _host) -> dict:
        reader.check_common(params)
        others = params["upgrade"] or params["rollback"] or params["pin"] or params["unpin"] or params["cleanup"]
        if not (others or params["finalize"]):
            raise DeploymentError("nothing to do: set upgrade, finalize, rollback, pin, unpin or cleanup")
        if params["finalize"] and (others or params["lock_finalization"]):
            raise DeploymentError("finalize applies the locked staged deployment and reboots into it; give it a task of its own")
        if params["soft_reboot"] and not params["finalize"]:
            raise DeploymentError("soft_reboot applies to finalize only")
        if params["reboot_timeout"] < 1:
            raise DeploymentError("reboot_timeout must be 1 second or more")
        if params["rollback"] and params["upgrade"] in ("stage", "download_only"):
            raise DeploymentError("rollback and upgrade contradict each other; use one per task")
        if params["rollback"] and "rollback" in params["cleanup"]:
            raise DeploymentError("rollback and cleanup of the rollback deployment contradict each other")
        if params["lock_finalization"] and params["upgrade"] != "stage":
            raise DeploymentError("lock_finalization applies to upgrade=stage only")
        return params

    def read(self, host, desired: dict) -> dict:
        if reader.bootc_only(host):
            return self._read_bootc(host, desired)
        if desired["soft_reboot"]:
            raise DeploymentError("soft_reboot is bootc's (upgrade --soft-reboot=auto); rpm-ostree finalize-deployment reboots")
        reader.require_rpm_ostree(host)
        status = reader.status(host)
        plans = {
            "pins": plan_pins(status, desired["pin"], desired["unpin"]),
            "cleanup": plan_cleanup(status, desired["cleanup"]),
            "rollback": plan_rollback(status) if desired["rollback"] else {"changed": False, "cleanup_staged": False},
            "finalize": plan_finalize(status) if desired["finalize"] else {"changed": False},
        }
        acting = (
            plans["finalize"]["changed"]
            or plans["pins"]["changed"]
            or plans["cleanup"]["changed"]
            or plans["rollback"]["changed"]
            or desired["upgrade"] in ("stage", "download_only")
        )
        found = None
        if acting or desired["upgrade"]:
            status = reader.wait_idle(host, host.runner.deadline(desired["wait_timeout"]))
            if desired["finalize"]:
                plans["finalize"] = plan_finalize(status)  # what waiting left
        if acting:
            reader.refuse_driver(host, status, desired["bypass_driver"])
        if desired["upgrade"]:
            found = self._look_for_update(host, desired)
        return {"before": summary(status), "plans": plans, "update": found, "backend": "rpm-ostree"}

    @staticmethod
    def _read_bootc(host, desired: dict) -> dict:
        given = sorted({BOOTC_REFUSED[key] for key in BOOTC_REFUSED if desired[key]})
        if given:
            raise DeploymentError(
                "%s are rpm-ostree's, and this host has no rpm-ostree (bootc manages it): bootc keeps one rollback "
                "and replaces it with each update" % " and ".join(given)
            )
        status = reader.bootc_status(host)
        if not status["is_bootc"]:
            raise DeploymentError("bootc reports no booted deployment; this host is not managed by bootc")
        plans = {
            "pins": {"changed": False, "pin": [], "unpin": [], "before": [], "after": []},
            "cleanup": {"changed": False, "flags": [], "cache_flags": [], "removed": []},
            "rollback": plan_bootc_rollback(status) if desired["rollback"] else {"changed": False},
            "finalize": plan_bootc_finalize(status) if desired["finalize"] else {"changed": False},
        }
        found = None
        if desired["upgrade"]:
            # The manifest and config only: what bootc finds lands in the booted entry's cachedUpdate.
            host.run(["bootc", "upgrade", "--check"])
            host.forget(reader.BOOTC_STATUS)
            status = reader.bootc_status(host)
            found = bootc_update(status)
        return {"before": bootc_summary(status), "plans": plans, "update": found, "backend": "bootc"}

    @staticmethod
    def _look_for_update(host, desired: dict) -> dict:
        """Ask for an update without deploying (exit 77 means none); the details land in the status's cached update."""
        available = reader.transaction(host, ["upgrade", "--check"], desired, ok_rcs=(0, 77)).rc == 0
        status = reader.reload(host)
        update = status["cached_update"] if available else None
        staged = pick(status, "staged")
        booted = pick(status, "booted") or {}
        return {
            "available": available,
            "update": update,
            "staged": bool(update and staged and staged["base_checksum"] == update["checksum"]),
            "downloaded": bool(update and booted.get("pending_base_checksum") == update["checksum"]),
        }

    def plan(self, current: dict, desired: dict) -> Plan:
        plans = dict(current["plans"], stage=False, download=False)
        result = {"pinned": plans["pins"]["after"], "removed": plans["cleanup"]["removed"]}
        found = current["update"]
        if found is not None:
            result.update(update_available=found["available"], update=found["update"])
            plans["stage"] = desired["upgrade"] == "stage" and found["available"] and not found["staged"]
            plans["download"] = (
                desired["upgrade"] == "download_only" and found["available"] and not found["downloaded"] and not found["staged"]
            )
        if found is not None and current["backend"] == "bootc" and desired["upgrade"] == "stage" and desired["lock_finalization"]:
            # bootc's download-only staged deployment is rpm-ostree's --lock-finalization
            plans["stage"], plans["download"] = False, found["available"] and not found["downloaded"] and not found["staged"]
        plans["backend"] = current["backend"]
        finalize = plans["finalize"]
        if desired["finalize"]:
            result["finalized"] = finalize.get("deployment")
        plans["moves_deployments"] = plans["cleanup"]["changed"] or plans["rollback"]["changed"] or plans["stage"]
        changed = plans["moves_deployments"] or plans["pins"]["changed"] or plans["download"] or finalize["changed"]
        predicted = (["rollback-queued"] if plans["rollback"]["changed"] else []) + (
            ["staged-update"] if plans["stage"] or finalize["changed"] else []
        )
        before = current["before"]
        after = predicted_summary(before, plans)
        if finalize["changed"]:
            # the staged deployment, unlocked, is what the reboot the finalize starts boots
            after = [finalized_entry(item) for item in after]
        return Plan(
            changed=changed,
            diff={"before": {"deployments": before}, "after": {"deployments": after}},
            actions=plans,
            result=result,
            reboot_reasons=predicted,
        )

    def apply(self, host, plan: Plan, desired: dict) -> dict:
        plans = plan.actions
        if plans["finalize"]["changed"]:
            return self._finalize(host, plans, desired["soft_reboot"])
        if plans["backend"] == "bootc":
            return self._apply_bootc(host, plan)
        if plans["cleanup"]["flags"] or plans["cleanup"]["cache_flags"]:
            reader.transaction(
                host, ["cleanup", *plans["cleanup"]["flags"], *plans["cleanup"]["cache_flags"]], desired, ok_rcs=(0,)
            )
        if plans["rollback"]["changed"]:
            if plans["rollback"]["cleanup_staged"] and "-p" not in plans["cleanup"]["flags"]:
                reader.transaction(host, ["cleanup", "-p"], desired, ok_rcs=(0,))
            reader.transaction(host, ["rollback"], desired, ok_rcs=(0,))
        bypass = ["--bypass-driver"] if desired["bypass_driver"] else []
        if plans["stage"]:
            lock = ["--lock-finalization"] if desired["lock_finalization"] else []
            reader.transaction(host, ["upgrade", "--unchanged-exit-77", *bypass, *lock], desired)
        if plans["download"]:
            reader.transaction(host, ["upgrade", "--download-only", *bypass], desired, ok_rcs=(0,))
        if plans["pins"]["changed"]:
            # Earlier actions move indexes; pins are resolved again on the status they left.
            status = reader.status(host)
            pins = plan_pins(status, desired["pin"], desired["unpin"])
            if pins["pin"]:
                host.run(["ostree", "admin", "pin", *map(str, pins["pin"])])
            if pins["unpin"]:
                host.run(["ostree", "admin", "pin", "--unpin", *map(str, pins["unpin"])])
            host.forget(reader.STATUS)
        return {"diff": {"before": plan.diff["before"], "after": {"deployments": summary(reader.status(host))}}}

    @staticmethod
    def _finalize(host, plans: dict, soft_reboot: bool) -> dict:
        """Start the finalize command in a transient unit a few seconds from now, so that this result reaches the
        controller before the host goes down; the boot ID tells the action plugin when the host has rebooted."""
        boot_id = (host.read_text(BOOT_ID) or "").strip()
        unit = FINALIZE_UNIT % int(time.time())
        argv = finalize_argv(plans["backend"], plans["finalize"], soft_reboot)
        binary = host.which(argv[0])
        if binary is None:
            raise DeploymentError("%s is not on this host; it cannot finalize the staged deployment" % argv[0])
        result = {"rebooting": True, "boot_id": boot_id, "finalize_unit": unit + ".service"}
        if soft_reboot:
            # a soft reboot keeps the kernel and its boot ID; systemd counts it instead
            shown = host.run(["systemctl", "show", "--property=SoftRebootsCount", "--value"], check=False).stdout.strip()
            result["soft_reboots"] = int(shown) if shown.isdigit() else None
        host.run(scheduled(unit, [binary, *argv[1:]]))
        return result

    @staticmethod
    def _apply_bootc(host, plan: Plan) -> dict:
        plans = plan.actions
        if plans["rollback"]["changed"]:
            host.run(["bootc", "rollback"])
        if plans["stage"]:
            host.run(["bootc", "upgrade"])  # stages the update, or unlocks it when it was only downloaded
        if plans["download"]:
            host.run(["bootc", "upgrade", "--download-only"])
        host.forget(reader.BOOTC_STATUS)
        return {"diff": {"before": plan.diff["before"], "after": {"deployments": bootc_summary(reader.bootc_status(host))}}}

    def report(self, host, plan: Plan, _desired: dict) -> dict:
        if plan.actions["finalize"]["changed"]:
            # The status read before still holds (the finalize starts after this result); the reboot it starts boots
            # the staged deployment, unlocked.
            if plan.actions["backend"] == "bootc":
                state = bootc.reboot_state(reader.bootc_status(host))
            else:
                state = reader.report(host, False)
            return dict(state, **reader.predicted_verdict(state, plan.reboot_reasons))
        if plan.actions["backend"] == "bootc":
            return reader.bootc_report(host, plan.changed, plan.reboot_reasons)
        return reader.report(host, plan.changed, plan.reboot_reasons)


UNIT = DeploymentUnit()
