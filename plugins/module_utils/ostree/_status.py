# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``rpm-ostree status --json`` parsed into plain data, and the questions automation asks of it.

Which deployment is booted, which boots next, which is staged, rollback and pinned; on which deployment new
changes stack (rpm-ostree computes every mutation on ``deployments[0]`` of the booted osname); whether a reboot
is pending and why; and the busy transaction.  Key names follow rpm-ostree's JSON, in snake_case.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._admin import (
    REASON_FINALIZATION_LOCKED,
    REASON_ROLLBACK,
    REASON_STAGED,
    REASON_STATEROOT,
    load_status_json,
    reboot_verdict,
)
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import (
    origin_to_dict,
    ref_architecture,
    rpm_architecture,
)

REASON_LAYERING = "layering-changed"
REASON_KARGS = "kargs-changed"
REASON_ORIGIN = "origin-changed"

SIGNATURE_FIELDS = (
    "valid",
    "sig_expired",
    "key_expired",
    "key_revoked",
    "key_missing",
    "fingerprint",
    "timestamp",
    "exp_timestamp",
    "pubkey_algo",
    "hash_algo",
    "user_name",
    "user_email",
    "fingerprint_primary",
    "key_exp_timestamp",
    "key_exp_timestamp_primary",
)
NEVRA_FIELDS = ("nevra", "name", "epoch", "version", "release", "arch")

# The request sets that make up layering; a pending deployment that differs in any of them changes what is layered.
LAYERING_KEYS = (
    "requested_packages",
    "requested_local_packages",
    "requested_local_fileoverride_packages",
    "requested_base_removals",
    "requested_base_local_replacements",
    "requested_base_remote_replacements",
    "regenerate_initramfs",
    "initramfs_args",
    "initramfs_etc",
)

_REQUIRED_KEYS = ("id", "osname", "checksum", "serial", "booted")


class StatusParseError(HostsError, ValueError):
    """Output that is not an rpm-ostree status document."""


def _load(document: Any) -> dict:
    return load_status_json(document, "rpm-ostree status --json", StatusParseError)


def _nevra(item: Any) -> dict:
    if isinstance(item, list) and len(item) == len(NEVRA_FIELDS):
        return dict(zip(NEVRA_FIELDS, item))
    return {"nevra": item if isinstance(item, str) else json.dumps(item)}


def _replacement(item: Any) -> dict:
    if isinstance(item, list) and len(item) == 2:
        return {"new": _nevra(item[0]), "old": _nevra(item[1])}
    return {"new": _nevra(item), "old": None}


def _signature(item: Any) -> dict:
    if isinstance(item, list) and len(item) == len(SIGNATURE_FIELDS):
        return dict(zip(SIGNATURE_FIELDS, item))
    return {"raw": item}


def _strings(value: Any) -> list:
    return sorted(str(v) for v in value) if isinstance(value, list) else []


def deployment_architecture(raw: dict, origin_parsed: Optional[dict]) -> Optional[str]:
    """The architecture the deployment was built for, as RPM names it: coreos-assembler's ``basearch`` in the commit
    metadata, else the image configuration's (a JSON text in a container import's metadata), else the ref's."""
    meta = raw.get("base-commit-meta") or {}
    if isinstance(meta.get("coreos-assembler.basearch"), str):
        return meta["coreos-assembler.basearch"]
    config = meta.get("ostree.container.image-config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            config = None
    if isinstance(config, dict) and isinstance(config.get("architecture"), str):
        return rpm_architecture(config["architecture"])
    if origin_parsed and origin_parsed.get("kind") == "refspec":
        return ref_architecture(origin_parsed.get("ref"))
    return None


def parse_deployment(raw: dict, index: int) -> dict:
    """One deployment object in snake_case, with its origin parsed."""
    missing = [key for key in _REQUIRED_KEYS if key not in raw]
    if missing:
        raise StatusParseError("deployment %d lacks %s" % (index, ", ".join(missing)))
    layered = "base-checksum" in raw
    origin = raw.get("container-image-reference") or raw.get("origin")
    requested = _strings(raw.get("requested-packages"))
    active = _strings(raw.get("packages"))
    custom = raw.get("custom-origin")
    origin_parsed = origin_to_dict(origin)
    remote_replacements = {}
    for source, items in (raw.get("base-remote-replacements") or {}).items():
        remote_replacements[source] = [_replacement(item) for item in items]
    requested_remote = []
    for entry in raw.get("requested-base-remote-replacements") or []:
        if isinstance(entry, list) and len(entry) == 2:
            requested_remote.append({"source": entry[0], "packages": sorted(entry[1])})
    return {
        "index": index,
        "id": raw["id"],
        "osname": raw["osname"],
        "checksum": raw["checksum"],
        "serial": raw["serial"],
        "booted": bool(raw["booted"]),
        "staged": bool(raw.get("staged", False)),
        "pinned": bool(raw.get("pinned", False)),
        "unlocked": raw.get("unlocked", "none"),
        "origin": origin,
        "origin_parsed": origin_parsed,
        "architecture": deployment_architecture(raw, origin_parsed),
        "container_image_reference_digest": raw.get("container-image-reference-digest"),
        "custom_origin": {"url": custom[0], "description": custom[1]} if isinstance(custom, list) and len(custom) == 2 else None,
        "version": raw.get("version"),
        "timestamp": raw.get("timestamp"),
        "layered": layered,
        "base_checksum": raw.get("base-checksum", raw["checksum"]),
        "base_version": raw.get("base-version", raw.get("version")),
        "base_timestamp": raw.get("base-timestamp", raw.get("timestamp")),
        "base_commit_meta": raw.get("base-commit-meta") or {},
        "layered_commit_meta": raw.get("layered-commit-meta"),
        "pending_base_checksum": raw.get("pending-base-checksum"),
        "pending_base_version": raw.get("pending-base-version"),
        "pending_base_timestamp": raw.get("pending-base-timestamp"),
        "endoflife": raw.get("endoflife"),
        "gpg_enabled": raw.get("gpg-enabled"),
        "signatures": [_signature(item) for item in raw.get("signatures") or []],
        "remote_error": raw.get("remote-error"),
        "requested_packages": requested,
        "packages": active,
        "inactive_requests": sorted(set(requested) - set(active)),
        "requested_local_packages": _strings(raw.get("requested-local-packages")),
        "requested_local_fileoverride_packages": _strings(raw.get("requested-local-fileoverride-packages")),
        "requested_base_removals": _strings(raw.get("requested-base-removals")),
        "requested_base_local_replacements": _strings(raw.get("requested-base-local-replacements")),
        "requested_base_remote_replacements": requested_remote,
        "base_removals": [_nevra(item) for item in raw.get("base-removals") or []],
        "base_local_replacements": [_replacement(item) for item in raw.get("base-local-replacements") or []],
        "base_remote_replacements": remote_replacements,
        "regenerate_initramfs": bool(raw.get("regenerate-initramfs", False)),
        "initramfs_args": raw.get("initramfs-args"),
        "initramfs_etc": raw.get("initramfs-etc"),
        "cliwrap": bool(raw.get("cliwrap", False)),
        "live_inprogress": raw.get("live-inprogress"),
        "live_replaced": raw.get("live-replaced"),
        "finalization_locked": bool(raw.get("finalization-locked", False)),
    }


def parse_transaction(value: Any) -> Optional[dict]:
    """The daemon's active transaction ``[method, sender, objpath]``, or None when idle."""
    if not isinstance(value, list) or len(value) != 3 or not value[0]:
        return None
    return {"method": value[0], "sender": value[1], "object_path": value[2]}


def parse_cached_update(value: Any) -> Optional[dict]:
    if not isinstance(value, dict):
        return None
    diff = value.get("rpm-diff") or {}
    return {
        "osname": value.get("osname"),
        "checksum": value.get("checksum"),
        "version": value.get("version"),
        "timestamp": value.get("timestamp"),
        "origin": value.get("origin"),
        "gpg_enabled": value.get("gpg-enabled"),
        "ref_has_new_commit": value.get("ref-has-new-commit"),
        "deployment": value.get("deployment"),
        "update_sha256": value.get("update-sha256"),
        "rpm_diff": {
            "upgraded": [{"name": i[1], "old": i[2][0], "new": i[3][0], "arch": i[3][1]} for i in diff.get("upgraded", [])],
            "downgraded": [{"name": i[1], "old": i[2][0], "new": i[3][0], "arch": i[3][1]} for i in diff.get("downgraded", [])],
            "removed": [{"name": i[1], "evr": i[2], "arch": i[3]} for i in diff.get("removed", [])],
            "added": [{"name": i[1], "evr": i[2], "arch": i[3]} for i in diff.get("added", [])],
        },
        "advisories": [
            {
                "id": a[0],
                "kind": a[1],
                "severity": a[2],
                "packages": a[3],
                "cve_references": (a[4] or {}).get("cve_references", []),
            }
            for a in value.get("advisories") or []
            if isinstance(a, list) and len(a) == 5
        ],
        "manifest_diff": value.get("manifest-diff"),
    }


def parse_update_driver(value: Any) -> Optional[dict]:
    if not isinstance(value, dict) or not value.get("driver-name"):
        return None
    return {"name": value["driver-name"], "unit": value.get("driver-sd-unit")}


def parse_status(document: Any) -> dict:
    """Parse ``rpm-ostree status --json`` output (text or already-decoded JSON) into plain data."""
    raw = _load(document)
    deployments = [parse_deployment(item, index) for index, item in enumerate(raw["deployments"])]
    status = {
        "deployments": deployments,
        "transaction": parse_transaction(raw.get("transaction")),
        "cached_update": parse_cached_update(raw.get("cached-update")),
        "update_driver": parse_update_driver(raw.get("update-driver")),
    }
    status.update(classify(deployments))
    return status


def classify(deployments: list) -> dict:
    """Booted, pending, staged, rollback, pinned and the merge (stacking) deployment, as indexes into the list.

    Rules of rpm-ostree and ostree (contract §1.7): ``deployments[0]`` boots next, so it is pending whenever it is
    not the booted one, whatever its stateroot (another stateroot made the default with ``ostree admin
    set-default`` or an image-based upgrade boots next just the same); rollback is the first entry after the booted
    one with the same osname; new changes stack on the first deployment of the booted osname.
    """
    booted = next((d for d in deployments if d["booted"]), None)
    osname = booted["osname"] if booted else (deployments[0]["osname"] if deployments else None)
    same_os = [d for d in deployments if d["osname"] == osname]
    pending = None
    if booted and deployments and not deployments[0]["booted"]:
        pending = deployments[0]
    rollback = None
    if booted:
        later = [d for d in same_os if d["index"] > booted["index"]]
        rollback = later[0] if later else None
    staged = next((d for d in deployments if d["staged"]), None)
    merge = same_os[0] if same_os else None
    return {
        "osname": osname,
        "booted_index": booted["index"] if booted else None,
        "pending_index": pending["index"] if pending else None,
        "staged_index": staged["index"] if staged else None,
        "rollback_index": rollback["index"] if rollback else None,
        "merge_index": merge["index"] if merge else None,
        "pinned_indexes": [d["index"] for d in deployments if d["pinned"]],
    }


def pick(status: dict, role: str) -> Optional[dict]:
    """The deployment playing ``role`` (booted, pending, staged, rollback, merge), or None."""
    index = status.get(role + "_index")
    return None if index is None else status["deployments"][index]


def layering_of(deployment: dict) -> dict:
    return {key: deployment.get(key) for key in LAYERING_KEYS}


def _kargs_without_ostree(kargs: Optional[list]) -> Optional[list]:
    if kargs is None:
        return None
    return [arg for arg in kargs if not arg.startswith("ostree=")]


def reboot_state(status: dict, booted_kargs: Optional[list] = None, pending_kargs: Optional[list] = None) -> dict:
    """Whether something different boots next, and why.

    ``booted_kargs`` and ``pending_kargs`` are the kernel argument lists of the two deployments when known; the
    ``ostree=`` argument, which always differs, is ignored.
    """
    pending, booted = pick(status, "pending"), pick(status, "booted")
    if pending is None or booted is None:
        return reboot_verdict([])
    reasons = []
    if pending["osname"] != booted["osname"]:
        reasons.append(REASON_STATEROOT)
    if pending["staged"]:
        reasons.append(REASON_STAGED)
        if pending["finalization_locked"]:
            reasons.append(REASON_FINALIZATION_LOCKED)
    elif pending["osname"] == booted["osname"]:
        reasons.append(REASON_ROLLBACK)
    pending_origin, booted_origin = pending.get("origin_parsed") or {}, booted.get("origin_parsed") or {}
    if pending_origin.get("canonical") != booted_origin.get("canonical") or pending_origin.get("normalized") != booted_origin.get(
        "normalized"
    ):
        reasons.append(REASON_ORIGIN)
    if layering_of(pending) != layering_of(booted):
        reasons.append(REASON_LAYERING)
    before, after = _kargs_without_ostree(booted_kargs), _kargs_without_ostree(pending_kargs)
    if before is not None and after is not None and before != after:
        reasons.append(REASON_KARGS)
    return reboot_verdict(reasons)


def transaction_title(status: dict) -> Optional[str]:
    """A printable name of the busy transaction (the D-Bus method; the JSON carries no title), or None."""
    txn = status.get("transaction")
    if not txn:
        return None
    return "%s (client %s)" % (txn["method"], txn["sender"])
