# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``ansible_facts.ostree`` assembled from parsed state, the same shape whichever tool reported it.

The ``from_*`` functions are pure; :func:`gather` reads the host through the reader (one status call of the backend
tool), and :data:`UNIT` is the module immutable.hosts.ostree_facts.  Standard library only, Python 3.9+.
"""

from __future__ import annotations

from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _bootc as bootc_status
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _health as health
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._admin import roles_from_flags
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import ref_architecture, rpm_architecture

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


def _by_role(deployments: list, roles: dict) -> dict:
    """The deployments and the ones each role names (``booted_index``, ``pending_index``...), with the kernel
    arguments of the next boot."""
    booted, pending = _pick(deployments, roles["booted_index"]), _pick(deployments, roles["pending_index"])
    return {
        "deployments": deployments,
        "booted": booted,
        "pending": pending,
        "staged": _pick(deployments, roles["staged_index"]),
        "rollback": _pick(deployments, roles["rollback_index"]),
        "merge": _pick(deployments, roles["merge_index"]),
        "kargs": (pending or booted or {}).get("kargs"),
    }


def from_rpm_ostree(status: dict, kargs: dict, update_policy: dict, machine: str, staged_kargs: Optional[list] = None) -> dict:
    """Facts from a parsed ``rpm-ostree status --json`` plus kernel arguments by (checksum, serial)."""
    facts = empty_facts(machine, True, "rpm-ostree")
    deployments = _with_roles(status["deployments"], status)
    for item in deployments:
        item["kargs"] = kargs.get((item["checksum"], item["serial"]))
        if item["kargs"] is None and item["staged"] and staged_kargs is not None:
            item["kargs"] = staged_kargs
    facts.update(_by_role(deployments, status), osname=status["osname"], update_policy=update_policy)
    facts.update({key: status[key] for key in ("update_driver", "transaction", "cached_update")})
    booted, pending = facts["booted"], facts["pending"]
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
    deployments = [_bootc_deployment(entry, index, kargs) for index, entry in enumerate(bootc_status.boot_order(status))]
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
    facts.update(_by_role(items, roles))
    booted, pending = facts["booted"], facts["pending"]
    facts["osname"] = (booted or (items[0] if items else {})).get("osname")
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
    facts.update(ostree.reboot_verdict(reasons))
    _running_architecture(facts, booted)
    return facts


# --- reading the host -----------------------------------------------------------------------------------------------

# Newest first: --json (ostree 2025.3, never verifies signatures), --skip-signatures (2024.1), then plain text, which
# older releases stop printing at a deployment whose commit lost its signature.
OSTREE_STATUS_ARGVS = (
    ["ostree", "admin", "status", "--json"],
    ["ostree", "admin", "status", "--skip-signatures"],
    ["ostree", "admin", "status"],
)


def read_ostree_status(host) -> list:
    for argv in OSTREE_STATUS_ARGVS:
        result = host.run(argv, check=False)
        if result.rc != 0 and "Unknown option" in result.stderr:
            continue
        if result.rc != 0:
            older = argv == OSTREE_STATUS_ARGVS[-1] and "signature" in result.stderr
            raise reader.OstreeHostError(
                "%s failed with exit code %d: %s%s"
                % (
                    " ".join(argv),
                    result.rc,
                    result.stderr.strip(),
                    "; this ostree is older than 2024.1 and cannot skip signature checks in its status" if older else "",
                )
            )
        if argv == OSTREE_STATUS_ARGVS[0]:
            return ostree.parse_admin_status_json(result.stdout)
        return ostree.parse_admin_status(result.stdout)
    raise reader.OstreeHostError("ostree admin status is not available on this host")


def with_origin_file(host, deployment: dict) -> None:
    """Where ostree's status names no origin (JSON before ostree 2026.1 has no refspec; text shows a container
    origin as "<unknown origin type>"), the deployment's own origin file says what it follows."""
    text = reader.origin_file(host, deployment)
    if text is None:
        return
    try:
        origin = ostree.parse_origin_file(text)
    except ValueError:
        return
    if origin["origin"]:
        deployment.update({key: value for key, value in origin.items() if key not in ("pinned", "rpm_ostree_groups")})
        deployment["origin_kind"] = "container" if (origin["origin_parsed"] or {}).get("kind") == "container" else "refspec"


# Where the device tree's root "compatible" strings are (NUL-separated, most specific first); /proc/device-tree is the
# kernel's compatibility link to the sysfs one.
DEVICE_TREE_COMPATIBLE = ("/sys/firmware/devicetree/base/compatible", "/proc/device-tree/compatible")
DMI_VENDOR = "/sys/class/dmi/id/sys_vendor"
# DMI vendors of the hypervisors that run ARM guests on Apple silicon: Apple's Virtualization.framework, Parallels,
# VMware Fusion.  A QEMU guest (UTM's QEMU backend) cannot be told apart from any other aarch64 QEMU guest.
MAC_HYPERVISORS = ("Apple Inc.", "Parallels", "VMware")


def parse_hardware(machine: str, page_size: int, compatible: Optional[bytes], vendor: Optional[bytes]) -> dict:
    """What the host runs on: Apple silicon (its device tree's compatible strings start with ``apple,``; Macs have no
    DMI tables), a Mac VM (an aarch64 guest of a Mac hypervisor, named by DMI), the machine and the page size.
    Apple silicon runs only arm64 code, so its ``arch`` is aarch64."""
    strings = [item.decode("utf-8", "replace") for item in (compatible or b"").split(b"\0") if item]
    apple = any(item.startswith("apple,") for item in strings)
    vendor_text = (vendor or b"").decode("utf-8", "replace").strip()
    mac_vm = machine == "aarch64" and any(vendor_text.startswith(name) for name in MAC_HYPERVISORS)
    return {
        "machine": machine,
        "arch": "aarch64" if apple or mac_vm else machine,
        "page_size": page_size,
        "compatible": strings,
        "apple_silicon": apple,
        "mac_vm": mac_vm,
        "hypervisor": vendor_text if mac_vm else None,
    }


def needs_staged_kargs(status: dict, kargs: dict) -> bool:
    """Whether the kernel arguments of the staged deployment must be asked of ``rpm-ostree kargs``: it has no BLS
    entry yet (``kargs`` holds the written ones) and new changes stack on it."""
    staged = rpm_ostree.pick(status, "staged")
    return staged is not None and (staged["checksum"], staged["serial"]) not in kargs and status["merge_index"] == staged["index"]


def read_hardware(host) -> dict:
    compatible = next((data for data in map(host.read_bytes, DEVICE_TREE_COMPATIBLE) if data is not None), None)
    return parse_hardware(host.machine(), host.page_size(), compatible, host.read_bytes(DMI_VENDOR, 256))


def gather(host, retries: int = reader.STARTUP_RETRIES) -> dict:
    """``ansible_facts.ostree`` of the host: one status call of whichever tool manages it, the health gate's last
    verdict, and the hardware."""
    facts = _gather(host, retries)
    facts["health"] = health.parse_health(host.read_text(health.HEALTH_STATE)) if facts["is_ostree"] else None
    facts["hardware"] = read_hardware(host)
    return facts


def _gather(host, retries: int) -> dict:
    machine = host.machine()
    if not reader.is_ostree_booted(host):
        return empty_facts(machine)
    kargs = reader.boot_kargs(host)
    if host.which("rpm-ostree"):
        status = reader.status(host, retries)
        policy = reader.update_config(host)
        policy["timer_enabled"] = reader.timer_enabled(host, "rpm-ostreed-automatic.timer")
        staged_kargs = None
        if needs_staged_kargs(status, kargs):
            staged_kargs = ostree.split_kargs(reader.read_patiently(host, ["rpm-ostree", "kargs"], retries))
        return from_rpm_ostree(status, kargs, policy, machine, staged_kargs=staged_kargs)
    if host.which("bootc"):
        status = reader.bootc_status(host, retries)
        policy = {"timer_enabled": reader.timer_enabled(host, "bootc-fetch-apply-updates.timer")}
        return from_bootc(status, kargs, policy, machine)
    if host.which("ostree"):
        deployments = read_ostree_status(host)
        for deployment in deployments:
            if not deployment["origin"]:
                with_origin_file(host, deployment)
        return from_ostree(deployments, kargs, machine)
    return empty_facts(machine, is_ostree=True, backend="none")


class FactsUnit:
    """immutable.hosts.ostree_facts: reads, never changes."""

    ARGUMENT_SPEC = dict(status_retries=dict(type="int", default=reader.STARTUP_RETRIES))
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, _host) -> dict:
        if params["status_retries"] < 0:
            raise reader.OstreeHostError("status_retries must be 0 or more")
        return params

    def read(self, host, desired: dict) -> dict:
        return gather(host, desired["status_retries"])

    def plan(self, current: dict, _desired: dict) -> Plan:
        return Plan(changed=False, diff=None, result={"ansible_facts": {"ostree": current}})

    def report(self, _host, _plan: Plan, _desired: dict) -> dict:
        return {"check_mode": _host.check_mode}


UNIT = FactsUnit()
