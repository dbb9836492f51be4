# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``ansible_facts.ostree`` assembled from parsed state, the same shape whichever tool reported it.

Pure functions, standard library only, Python 3.9+.  Reading files and running commands is the module's job.
"""

from __future__ import annotations

from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils import bootc as bootc_status
from ansible_collections.immutable.hosts.plugins.module_utils import ostree, rpm_ostree
from ansible_collections.immutable.hosts.plugins.module_utils.imageref import ref_architecture, rpm_architecture
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import roles_from_flags

BACKENDS = ("rpm-ostree", "bootc", "ostree", "none")

_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "x64": "x86_64"}
_OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}

# Keys of rpm_ostree.parse_deployment that the facts carry for every deployment.
DEPLOYMENT_FACT_KEYS = (
    "index",
    "id",
    "osname",
    "checksum",
    "serial",
    "booted",
    "staged",
    "pinned",
    "unlocked",
    "origin",
    "origin_parsed",
    "architecture",
    "container_image_reference_digest",
    "version",
    "timestamp",
    "layered",
    "base_checksum",
    "base_version",
    "requested_packages",
    "packages",
    "inactive_requests",
    "requested_local_packages",
    "requested_base_removals",
    "requested_base_local_replacements",
    "requested_base_remote_replacements",
    "base_removals",
    "base_local_replacements",
    "base_remote_replacements",
    "regenerate_initramfs",
    "finalization_locked",
    "live_replaced",
)


def normalize_arch(machine: str) -> dict:
    arch = _ARCH_ALIASES.get(machine, machine)
    return {"architecture": arch, "oci_architecture": _OCI_ARCH.get(arch, arch)}


def _running_architecture(facts: dict, booted: Optional[dict]) -> None:
    """The architecture of the booted deployment (what the host runs), where the deployment tells it; the
    machine's otherwise (a 32-bit userland on a 64-bit kernel is the deployment's, not the kernel's)."""
    arch = (booted or {}).get("architecture")
    if arch:
        facts.update(normalize_arch(arch))


def empty_facts(machine: str, is_ostree: bool = False, backend: str = "none") -> dict:
    facts = {
        "is_ostree": is_ostree,
        "backend": backend,
        "osname": None,
        "booted": None,
        "pending": None,
        "staged": None,
        "rollback": None,
        "merge": None,
        "deployments": [],
        "kargs": None,
        "reboot_required": False,
        "reboot_reasons": [],
        "staged_locked": False,
        "staged_locked_reasons": [],
        "update_policy": None,
        "update_driver": None,
        "transaction": None,
        "cached_update": None,
    }
    facts.update(normalize_arch(machine))
    return facts


def _with_roles(deployments: list, roles: dict) -> list:
    result = []
    for item in deployments:
        fact = {key: item.get(key) for key in DEPLOYMENT_FACT_KEYS if key in item}
        fact["pending"] = item["index"] == roles.get("pending_index")
        fact["rollback"] = item["index"] == roles.get("rollback_index")
        result.append(fact)
    return result


def _pick(deployments: list, index: Optional[int]) -> Optional[dict]:
    return None if index is None else deployments[index]


def from_rpm_ostree(status: dict, kargs: dict, update_policy: dict, machine: str, staged_kargs: Optional[list] = None) -> dict:
    """Facts from a parsed ``rpm-ostree status --json`` plus kernel arguments by (checksum, serial)."""
    facts = empty_facts(machine, True, "rpm-ostree")
    deployments = _with_roles(status["deployments"], status)
    for item in deployments:
        item["kargs"] = kargs.get((item["checksum"], item["serial"]))
        if item["kargs"] is None and item["staged"] and staged_kargs is not None:
            item["kargs"] = staged_kargs
    booted = _pick(deployments, status["booted_index"])
    pending = _pick(deployments, status["pending_index"])
    facts.update(
        {
            "osname": status["osname"],
            "deployments": deployments,
            "booted": booted,
            "pending": pending,
            "staged": _pick(deployments, status["staged_index"]),
            "rollback": _pick(deployments, status["rollback_index"]),
            "merge": _pick(deployments, status["merge_index"]),
            "kargs": (pending or booted or {}).get("kargs"),
            "update_policy": update_policy,
            "update_driver": status["update_driver"],
            "transaction": status["transaction"],
            "cached_update": status["cached_update"],
        }
    )
    facts.update(
        rpm_ostree.reboot_state(status, booted_kargs=(booted or {}).get("kargs"), pending_kargs=(pending or {}).get("kargs"))
    )
    _running_architecture(facts, booted)
    return facts


def _bootc_deployment(entry: dict, index: int, kargs: dict) -> dict:
    image = entry.get("image") or {}
    composefs = entry["backend"] == "composefs"
    key = ("composefs", entry.get("checksum")) if composefs else (entry.get("checksum"), entry.get("serial"))
    return {
        "index": index,
        "osname": entry.get("stateroot"),
        "checksum": entry.get("checksum"),
        "serial": entry.get("serial"),
        "backend": entry["backend"],
        "composefs": entry.get("composefs"),
        "booted": entry["role"] == "booted",
        "staged": entry["role"] == "staged",
        "pinned": entry["pinned"],
        "pending": False,
        "rollback": entry["role"] == "rollback",
        "origin": (image.get("image") or {}).get("canonical"),
        "origin_parsed": image.get("image"),
        "architecture": rpm_architecture(entry.get("architecture")),
        "container_image_reference_digest": image.get("digest"),
        "version": image.get("version"),
        "timestamp": image.get("timestamp"),
        "incompatible": entry["incompatible"],
        "finalization_locked": entry["download_only"],
        "soft_reboot_capable": entry["soft_reboot_capable"],
        "kargs": kargs.get(key),
    }


def _bootc_update(update: Optional[dict]) -> Optional[dict]:
    """bootc's cached update (``bootc upgrade --check``) in the facts' ``cached_update``."""
    if not update:
        return None
    image = update.get("image") or {}
    return {
        "origin": image.get("canonical"),
        "image": image,
        "digest": update.get("digest"),
        "version": update.get("version"),
        "timestamp": update.get("timestamp"),
        "architecture": rpm_architecture(update.get("architecture")),
    }


def from_bootc(status: dict, kargs: dict, update_policy: dict, machine: str) -> dict:
    """Facts from a parsed ``bootc status``: deployments listed in boot order (staged, booted, rollback, others)."""
    facts = empty_facts(machine, True, "bootc")
    ordered = [status[role] for role in ("staged", "booted", "rollback") if status.get(role)] + list(status["other"])
    if status["rollback_queued"] and status.get("rollback") and status.get("booted") and not status.get("staged"):
        ordered = [status["rollback"], status["booted"]] + list(status["other"])
    deployments = [_bootc_deployment(entry, index, kargs) for index, entry in enumerate(ordered)]
    booted = next((d for d in deployments if d["booted"]), None)
    pending = deployments[0] if deployments and not deployments[0]["booted"] else None
    if pending:
        pending["pending"] = True
    facts.update(
        {
            "osname": booted["osname"] if booted else None,
            "deployments": deployments,
            "booted": booted,
            "pending": pending,
            "staged": next((d for d in deployments if d["staged"]), None),
            "rollback": next((d for d in deployments if d["rollback"]), None),
            "merge": deployments[0] if deployments else None,
            "kargs": (pending or booted or {}).get("kargs"),
            "update_policy": update_policy,
            "cached_update": _bootc_update((status.get("booted") or {}).get("cached_update")),
        }
    )
    facts.update(bootc_status.reboot_state(status))
    _running_architecture(facts, booted)
    return facts


def from_ostree(deployments: list, kargs: dict, machine: str) -> dict:
    """Facts from ``ostree admin status`` alone (no rpm-ostree, no bootc)."""
    facts = empty_facts(machine, True, "ostree")
    roles = roles_from_flags(deployments)
    items = []
    for item in deployments:
        fact = dict(item)
        fact["pending"] = item["index"] == roles["pending_index"]
        fact["kargs"] = kargs.get((item["checksum"], item["serial"]))
        origin = item.get("origin_parsed") or {}
        fact["architecture"] = ref_architecture(origin.get("ref")) if origin.get("kind") == "refspec" else None
        items.append(fact)
    booted = _pick(items, roles["booted_index"])
    pending = _pick(items, roles["pending_index"])
    reasons = []
    if pending is not None:
        if booted is not None and pending["osname"] != booted["osname"]:
            reasons.append(ostree.REASON_STATEROOT)
        if pending["staged"]:
            reasons.append(ostree.REASON_STAGED)
        elif booted is None or pending["osname"] == booted["osname"]:
            reasons.append(ostree.REASON_ROLLBACK)
        if pending.get("finalization_locked"):
            reasons.append(ostree.REASON_FINALIZATION_LOCKED)
    facts.update(
        {
            "osname": (booted or (items[0] if items else {})).get("osname"),
            "deployments": items,
            "booted": booted,
            "pending": pending,
            "staged": _pick(items, roles["staged_index"]),
            "rollback": _pick(items, roles["rollback_index"]),
            "merge": _pick(items, roles["merge_index"]),
            "kargs": (pending or booted or {}).get("kargs"),
        }
    )
    facts.update(ostree.reboot_verdict(reasons))
    _running_architecture(facts, booted)
    return facts
