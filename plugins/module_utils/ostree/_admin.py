# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain OSTree state: ``ostree admin status`` (text and ``--json``), GLib keyfiles (origin files,
``/etc/rpm-ostreed.conf``), BLS boot entries and kernel command lines.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import split_lines
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import origin_to_dict

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_HEADER_RE = re.compile(
    r"^(?P<mark>[* ]) (?P<osname>\S+) (?P<checksum>[0-9a-f]{64})\.(?P<serial>[0-9]+)(?P<flags>(?: \([a-z -]+\))*)$"
)
_FLAG_RE = re.compile(r"\(([a-z -]+)\)")

UPDATE_POLICIES = ("none", "check", "stage", "apply")

REASON_STAGED = "staged-update"
REASON_ROLLBACK = "rollback-queued"
REASON_STATEROOT = "stateroot-changed"
REASON_FINALIZATION_LOCKED = "finalization-locked"
_POLICY_ALIASES = {"off": "none", "ex-stage": "stage"}


class OstreeParseError(HostsError, ValueError):
    """Output that is not what ostree prints."""


def _deployment(osname: str, checksum: str, serial: int, index: int) -> dict:
    return {
        "index": index,
        "osname": osname,
        "checksum": checksum,
        "serial": serial,
        "booted": False,
        "pending": False,
        "rollback": False,
        "staged": False,
        "finalization_locked": False,
        "soft_reboot_target": False,
        "pinned": False,
        "unlocked": "none",
        "version": None,
        "origin": None,
        "origin_parsed": None,
        "origin_kind": "refspec",
        "source_title": None,
        "gpg": [],
    }


def parse_admin_status(text: str) -> list:
    """Parse the text of ``ostree admin status`` into deployments in boot order."""
    deployments = []
    current = None
    for raw in split_lines(_ANSI_RE.sub("", text or "")):
        line = raw.rstrip()
        if not line.strip() or line.strip() == "No deployments.":
            continue
        header = _HEADER_RE.match(line)
        if header:
            current = _deployment(header["osname"], header["checksum"], int(header["serial"]), len(deployments))
            current["booted"] = header["mark"] == "*"
            for flag in _FLAG_RE.findall(header["flags"]):
                if flag == "finalization locked":
                    current["staged"] = current["finalization_locked"] = True
                elif flag == "soft-reboot":
                    current["soft_reboot_target"] = True
                elif flag in ("staged", "pending", "rollback"):
                    current[flag] = True
                    if flag == "staged":
                        current["pending"] = True
            deployments.append(current)
            continue
        if current is None or not line.startswith("    "):
            raise OstreeParseError("unexpected line in ostree admin status: %r" % line)
        _detail(current, line.strip())
    return deployments


def _detail(current: dict, line: str) -> None:
    if line.startswith("Version: "):
        current["version"] = line[len("Version: ") :]
    elif line.startswith("Unlocked: "):
        current["unlocked"] = line[len("Unlocked: ") :]
    elif line == "Pinned: yes":
        current["pinned"] = True
    elif line.startswith("origin refspec: "):
        current["origin"] = line[len("origin refspec: ") :]
        current["origin_parsed"] = origin_to_dict(current["origin"])
    elif line == "origin: <unknown origin type>":
        current["origin_kind"] = "unknown"
    elif line == "origin: none":
        current["origin_kind"] = "none"
    elif line.startswith("`- "):
        current["source_title"] = line[3:]
    elif line.startswith("GPG: "):
        current["gpg"].append(line[len("GPG: ") :])
    else:
        current.setdefault("other", []).append(line)


def load_status_json(document: Any, command: str, error: type) -> dict:
    """A status document (``rpm-ostree status --json``, ``ostree admin status --json``) as data, with its
    ``deployments`` list, or ``error`` naming ``command``."""
    if isinstance(document, (str, bytes)):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise error("%s did not print JSON: %s" % (command, exc)) from None
    if not isinstance(document, dict) or not isinstance(document.get("deployments"), list):
        raise error("%s printed no 'deployments' list" % command)
    return document


def parse_admin_status_json(document: Any) -> list:
    """Parse ``ostree admin status --json`` (ostree 2025.4 and later)."""
    document = load_status_json(document, "ostree admin status --json", OstreeParseError)
    result = []
    for index, raw in enumerate(document["deployments"]):
        item = _deployment(raw.get("stateroot"), raw.get("checksum"), raw.get("serial", 0), raw.get("index", index))
        for key in ("booted", "pending", "rollback", "staged", "pinned"):
            item[key] = bool(raw.get(key, False))
        item["finalization_locked"] = bool(raw.get("finalization-locked", False))
        item["soft_reboot_target"] = bool(raw.get("soft-reboot-target", False))
        item["unlocked"] = raw.get("unlocked", "none")
        item["version"] = raw.get("version")
        item["source_title"] = raw.get("source-title")
        item["origin"] = raw.get("refspec")
        item["origin_parsed"] = origin_to_dict(item["origin"])
        if not item["origin"]:
            item["origin_kind"] = "unknown"
        result.append(item)
    return result


def reboot_verdict(reasons: list) -> dict:
    """What a plain reboot would do, from the reasons the next deployment differs.

    A staged deployment whose finalization is locked (``--lock-finalization``, bootc's download-only) is discarded
    by a plain reboot, which then boots the running deployment again: it needs ``finalize-deployment`` (bootc:
    ``upgrade --from-downloaded``), not a reboot.  It is reported apart, in ``staged_locked`` and its reasons, so a
    playbook that reboots on ``reboot_required`` does not reboot for nothing.
    """
    if REASON_FINALIZATION_LOCKED in reasons:
        # Only a rollback queued in the bootloader (bootc) still boots something else once the staged one is gone.
        rest = [reason for reason in reasons if reason == REASON_ROLLBACK]
        locked = [reason for reason in reasons if reason != REASON_ROLLBACK]
        return {"reboot_required": bool(rest), "reboot_reasons": rest, "staged_locked": True, "staged_locked_reasons": locked}
    return {
        "reboot_required": bool(reasons),
        "reboot_reasons": list(reasons),
        "staged_locked": False,
        "staged_locked_reasons": [],
    }


def roles_from_flags(deployments: list) -> dict:
    """Indexes of booted, pending, staged, rollback deployments as ostree labelled them."""

    def first(key: str) -> Optional[int]:
        return next((d["index"] for d in deployments if d[key]), None)

    booted = first("booted")
    pending = first("pending")
    if pending is None and booted is not None and deployments and deployments[0]["index"] != booted:
        pending = deployments[0]["index"]  # another stateroot boots next: ostree flags nothing, but it is next
    rollback = first("rollback")
    if rollback is None and booted is not None:
        # ostree before 2017.7 printed no flags at all: the rollback is the first later deployment of the stateroot.
        osname = next(d["osname"] for d in deployments if d["index"] == booted)
        rollback = next((d["index"] for d in deployments if d["index"] > booted and d["osname"] == osname), None)
    return {
        "booted_index": booted,
        "pending_index": pending,
        "staged_index": first("staged"),
        "rollback_index": rollback,
        "merge_index": deployments[0]["index"] if deployments else None,
        "pinned_indexes": [d["index"] for d in deployments if d["pinned"]],
    }


# --- GLib keyfiles ----------------------------------------------------------------------------------------------


_LOCAL_PACKAGE_RE = re.compile(r"^[0-9a-fA-F]{64}:(?P<nevra>.+)\Z")


def _nevras(value: Optional[str]) -> list:
    """``SHA256:NEVRA;...`` entries (local packages, local replacements) as NEVRAs, as rpm-ostree status shows them."""
    result = []
    for item in keyfile.string_list(value):
        match = _LOCAL_PACKAGE_RE.match(item)
        result.append(match.group("nevra") if match else item)
    return sorted(result)


def _remote_replacements(value: Optional[str]) -> list:
    """``repo=NAME,pkg1,pkg2;...`` entries as ``[{"source": "repo=NAME", "packages": [...]}]`` (parse_deployment's
    shape of ``requested-base-remote-replacements``)."""
    result = []
    for item in keyfile.string_list(value):
        source, _sep, packages = item.partition(",")
        result.append({"source": source, "packages": sorted(p for p in packages.split(",") if p)})
    return result


def parse_origin_file(text: str) -> dict:
    """An ostree origin file: the refspec or image, and rpm-ostree's layering and initramfs requests, in the shapes
    ``rpm_ostree.parse_deployment`` gives them (local packages as NEVRA, without their SHA-256)."""
    groups = keyfile.parse(text)
    origin = groups.get("origin", {})
    packages = groups.get("packages", {})
    overrides = groups.get("overrides", {})
    rpmostree = groups.get("rpmostree", {})
    ref = origin.get("container-image-reference") or origin.get("baserefspec") or origin.get("refspec")
    initramfs = "regenerate-initramfs" in rpmostree or "initramfs-args" in rpmostree or "initramfs-etc" in rpmostree
    return {
        "origin": ref,
        "origin_parsed": origin_to_dict(ref),
        "override_commit": origin.get("override-commit"),
        "requested_packages": sorted(keyfile.string_list(packages.get("requested"))),
        "requested_local_packages": _nevras(packages.get("requested-local")),
        "requested_local_fileoverride_packages": _nevras(packages.get("requested-local-fileoverride")),
        "requested_base_removals": sorted(keyfile.string_list(overrides.get("remove"))),
        "requested_base_local_replacements": _nevras(overrides.get("replace-local")),
        "requested_base_remote_replacements": _remote_replacements(overrides.get("replace")),
        "regenerate_initramfs": rpmostree.get("regenerate-initramfs", "false").lower() == "true",
        "initramfs_args": keyfile.string_list(rpmostree.get("initramfs-args")) if initramfs else None,
        "initramfs_etc": keyfile.string_list(rpmostree.get("initramfs-etc")) if initramfs else None,
        "pinned": groups.get("libostree-transient", {}).get("pinned") == "true",
        "rpm_ostree_groups": sorted(g for g in groups if g in ("rpmostree", "packages", "overrides", "modules")),
    }


def parse_rpm_ostreed_conf(text: Optional[str]) -> dict:
    """``/etc/rpm-ostreed.conf``'s [Daemon] settings, with rpm-ostree's defaults filled in."""
    daemon = keyfile.parse(text or "").get("Daemon", {})
    raw_policy = daemon.get("AutomaticUpdatePolicy", "none").strip().lower()
    policy = _POLICY_ALIASES.get(raw_policy, raw_policy)
    return {
        "policy": policy,
        "policy_valid": policy in UPDATE_POLICIES,
        "idle_exit_timeout": int(daemon["IdleExitTimeout"]) if daemon.get("IdleExitTimeout", "").isdigit() else 60,
        "lock_layering": daemon.get("LockLayering", "false").lower() == "true",
        "recommends": daemon.get("Recommends", "true").lower() != "false",
    }


# --- boot entries and kernel arguments --------------------------------------------------------------------------


# The kernel's isspace(): the blanks that separate arguments outside double quotes (lib/cmdline.c next_arg).
_KERNEL_BLANKS = " \t\n\v\f\r"


def split_kargs(cmdline: Optional[str]) -> list:
    """Kernel arguments in order, split as the kernel splits its command line: at blanks outside double quotes.

    Double quotes are the only quoting the kernel knows (no single quotes, no backslash escapes); each argument is
    kept as written, quotes included, which is also how OSTree stores it.
    """
    args, current, quoted = [], [], False
    for char in cmdline or "":
        if char in _KERNEL_BLANKS and not quoted:
            if current:
                args.append("".join(current))
                current = []
            continue
        if char == '"':
            quoted = not quoted
        current.append(char)
    if current:
        args.append("".join(current))
    return args


def parse_bls_entry(text: str) -> dict:
    """A Boot Loader Specification entry: ``title``, ``version``, ``linux``, ``initrd``, ``options``."""
    entry: dict = {}
    for raw in split_lines(text):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _sep, value = line.partition(" ")
        entry[key] = value.strip()
    entry["kargs"] = split_kargs(entry.get("options"))
    return entry


def ostree_boot_path(kargs: list) -> Optional[str]:
    """The ``ostree=`` argument's path, which links to the deployment the entry boots."""
    for arg in kargs:
        if arg.startswith("ostree="):
            return arg[len("ostree=") :]
    return None


def composefs_digest(kargs: list) -> Optional[str]:
    """The fs-verity digest of a ``composefs=`` argument (bootc's composefs backend boots these instead of
    ``ostree=``); a leading ``?`` means verity is not enforced and is not part of the digest."""
    for arg in kargs:
        if arg.startswith("composefs="):
            return arg[len("composefs=") :].lstrip("?") or None
    return None


def deployment_from_link(target: str) -> Optional[tuple]:
    """(osname, checksum, serial) from the target of a ``/ostree/boot.N/...`` link (``.../deploy/OS/deploy/CSUM.SERIAL``)."""
    match = re.search(r"deploy/([^/]+)/deploy/([0-9a-f]{64})\.([0-9]+)/?$", target or "")
    if not match:
        return None
    return match.group(1), match.group(2), int(match.group(3))
