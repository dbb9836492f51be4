# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``bootc status`` parsed into plain data.

Automation asks for ``--format=json``; YAML (bootc's default when stdout is not a terminal) is tolerated with a
small reader for the block style bootc prints, since target hosts have only the standard library.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import split_lines
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._admin import (
    REASON_FINALIZATION_LOCKED,
    REASON_ROLLBACK,
    REASON_STAGED,
    reboot_verdict,
)
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import (
    SIGVERIFY_REMOTE,
    SIGVERIFY_SIGNED,
    SIGVERIFY_UNVERIFIED,
    ImageReference,
    InvalidReference,
)


class BootcParseError(HostsError, ValueError):
    """Output that is not a bootc status document."""


# --- a reader for the YAML subset bootc emits -----------------------------------------------------------------

_INT_RE = re.compile(r"^-?[0-9]+\Z")


def _scalar(text: str) -> Any:
    text = text.strip()
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if text[0] == "!" and " " in text:
        # serde_yaml writes enum variants with data as tagged values: ``!ostreeRemote fedora``.
        tag, value = text[1:].split(" ", 1)
        return {tag: _scalar(value)}
    if text[0] == '"':
        try:
            return json.loads(text)
        except ValueError:
            raise BootcParseError("cannot read quoted YAML string %s" % text) from None
    if text[0] == "'":
        if len(text) < 2 or text[-1] != "'":
            raise BootcParseError("unterminated YAML string %s" % text)
        return text[1:-1].replace("''", "'")
    if _INT_RE.match(text):
        return int(text)
    return text


def _split_key(text: str) -> tuple:
    if text.startswith(("'", '"')):
        quote = text[0]
        end = text.find(quote, 1)
        if end < 0:
            raise BootcParseError("unterminated quoted key %s" % text)
        key, rest = _scalar(text[: end + 1]), text[end + 1 :]
        if not rest.startswith(":"):
            raise BootcParseError("expected ':' after key %r" % key)
        return key, rest[1:].strip()
    key, sep, rest = text.partition(":")
    if not sep:
        raise BootcParseError("expected 'key: value', got %r" % text)
    return key.strip(), rest.strip()


def _lines(text: str) -> list:
    result = []
    for raw in split_lines(text):
        stripped = raw.rstrip()
        if not stripped.strip() or stripped.lstrip().startswith("#") or stripped.strip() in ("---", "..."):
            continue
        result.append((len(stripped) - len(stripped.lstrip(" ")), stripped.strip()))
    return result


def _block(lines: list, pos: int, indent: int) -> tuple:
    if pos >= len(lines) or lines[pos][0] < indent:
        return None, pos
    if lines[pos][1].startswith("- ") or lines[pos][1] == "-":
        return _sequence(lines, pos, lines[pos][0])
    return _mapping(lines, pos, lines[pos][0])


def _value_after(lines: list, pos: int, indent: int, rest: str) -> tuple:
    if rest:
        return _scalar(rest), pos + 1
    nxt = lines[pos + 1] if pos + 1 < len(lines) else None
    if nxt and (nxt[0] > indent or (nxt[0] == indent and nxt[1].startswith("- "))):
        return _block(lines, pos + 1, nxt[0])
    return None, pos + 1


def _mapping(lines: list, pos: int, indent: int) -> tuple:
    result = {}
    while pos < len(lines) and lines[pos][0] == indent and not lines[pos][1].startswith("- "):
        key, rest = _split_key(lines[pos][1])
        result[key], pos = _value_after(lines, pos, indent, rest)
    if pos < len(lines) and lines[pos][0] > indent:
        raise BootcParseError("unexpected indentation at %r" % lines[pos][1])
    return result, pos


def _sequence(lines: list, pos: int, indent: int) -> tuple:
    result = []
    while pos < len(lines) and lines[pos][0] == indent and (lines[pos][1].startswith("- ") or lines[pos][1] == "-"):
        item = lines[pos][1][1:].strip()
        if not item:
            value, pos = _block(lines, pos + 1, indent + 1)
        elif ":" in item and not item.startswith(("'", '"')) and re.match(r"^[^\s:]+:(\s|$)", item):
            # "- key: value" starts a mapping whose keys sit two columns right of the dash.
            lines[pos] = (indent + 2, item)
            value, pos = _mapping(lines, pos, indent + 2)
        else:
            value, pos = _scalar(item), pos + 1
        result.append(value)
    return result, pos


def load_yaml_subset(text: str) -> Any:
    """Read block-style YAML of mappings, sequences and plain or quoted scalars (what bootc prints)."""
    lines = _lines(text)
    if not lines:
        return None
    value, pos = _block(lines, 0, lines[0][0])
    if pos != len(lines):
        raise BootcParseError("could not read YAML past %r" % lines[pos][1])
    return value


# --- bootc status -----------------------------------------------------------------------------------------------


def _load(document: Any) -> dict:
    if isinstance(document, (bytes, str)):
        text = document.decode() if isinstance(document, bytes) else document
        stripped = text.lstrip()
        try:
            document = json.loads(text) if stripped.startswith("{") else load_yaml_subset(text)
        except ValueError as exc:
            raise BootcParseError("bootc status printed neither JSON nor YAML: %s" % exc) from None
    if not isinstance(document, dict) or document.get("kind") != "BootcHost":
        raise BootcParseError("bootc status did not print a BootcHost document")
    return document


def image_reference_from_bootc(spec: Optional[dict]) -> Optional[ImageReference]:
    """bootc's ``ImageReference`` ({image, transport, signature}) as our parsed reference."""
    if not isinstance(spec, dict) or not spec.get("image"):
        return None
    signature = spec.get("signature")
    remote = None
    if isinstance(signature, dict) and "ostreeRemote" in signature:
        sigverify, remote = SIGVERIFY_REMOTE, signature["ostreeRemote"]
    elif signature == "containerPolicy":
        sigverify = SIGVERIFY_SIGNED
    else:
        sigverify = SIGVERIFY_UNVERIFIED
    transport = spec.get("transport") or "registry"
    if transport == "docker":
        transport = "registry"
    return ImageReference(sigverify=sigverify, transport=transport, name=spec["image"], remote=remote)


def _image_status(value: Optional[dict]) -> Optional[dict]:
    if not isinstance(value, dict):
        return None
    ref = image_reference_from_bootc(value.get("image"))
    try:
        parsed = ref.to_dict() if ref else None
    except InvalidReference as exc:
        parsed = {"kind": "invalid", "error": str(exc)}
    return {
        "image": parsed,
        "version": value.get("version"),
        "timestamp": value.get("timestamp"),
        "digest": value.get("imageDigest"),
        "architecture": value.get("architecture"),
    }


def parse_entry(value: Optional[dict], role: str) -> Optional[dict]:
    """One boot entry.  On the ostree backend it is identified by its commit, serial and stateroot; on the composefs
    backend (``"ostree": null``, ``"composefs": {"verity", "bootType", ...}``) by the fs-verity digest of its image,
    which the kernel command line names as ``composefs=``; there are no stateroots there."""
    if not isinstance(value, dict):
        return None
    ostree = value.get("ostree") if isinstance(value.get("ostree"), dict) else {}
    composefs = value.get("composefs") if isinstance(value.get("composefs"), dict) else None
    image = _image_status(value.get("image"))
    return {
        "role": role,
        "image": image,
        "cached_update": _image_status(value.get("cachedUpdate")),
        "incompatible": bool(value.get("incompatible", False)),
        "pinned": bool(value.get("pinned", False)),
        "soft_reboot_capable": bool(value.get("softRebootCapable", False)),
        "download_only": bool(value.get("downloadOnly", False)),
        "store": value.get("store"),
        "backend": "composefs" if composefs is not None else "ostree",
        "checksum": composefs.get("verity") if composefs is not None else ostree.get("checksum"),
        "serial": ostree.get("deploySerial"),
        "stateroot": ostree.get("stateroot"),
        "composefs": (
            {
                "verity": composefs.get("verity"),
                "boot_type": composefs.get("bootType"),
                "bootloader": composefs.get("bootloader"),
                "boot_digest": composefs.get("bootDigest"),
                "missing_verity_allowed": bool(composefs.get("missingVerityAllowed", False)),
            }
            if composefs is not None
            else None
        ),
        "architecture": (image or {}).get("architecture"),
    }


def parse_status(document: Any) -> dict:
    """Parse ``bootc status --format=json`` (or its YAML) into plain data."""
    raw = _load(document)
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    booted = parse_entry(status.get("booted"), "booted")
    staged = parse_entry(status.get("staged"), "staged")
    rollback = parse_entry(status.get("rollback"), "rollback")
    spec_ref = image_reference_from_bootc(spec.get("image"))
    rollback_queued = bool(status.get("rollbackQueued", False)) or spec.get("bootOrder") == "rollback"
    return {
        "is_bootc": booted is not None,
        "booted": booted,
        "staged": staged,
        "rollback": rollback,
        "other": [parse_entry(item, "other") for item in status.get("otherDeployments") or []],
        "rollback_queued": rollback_queued,
        "boot_order": spec.get("bootOrder", "default"),
        "spec_image": spec_ref.to_dict() if spec_ref else None,
        "type": status.get("type"),
        "usr_overlay": status.get("usrOverlay"),
        "read_only": bool(status.get("readOnly", False)),
    }


def boot_order(status: dict) -> list:
    """The entries of a parsed status in boot order: staged, booted, rollback, others (a queued rollback boots before
    the booted one)."""
    ordered = [status[role] for role in ("staged", "booted", "rollback") if status.get(role)] + list(status["other"])
    if status["rollback_queued"] and status.get("rollback") and status.get("booted") and not status.get("staged"):
        ordered = [status["rollback"], status["booted"]] + list(status["other"])
    return ordered


def reboot_state(status: dict) -> dict:
    """Whether a plain reboot boots something else, and why; a download-only staged deployment is reported apart
    (``staged_locked``): a plain reboot discards it."""
    reasons = []
    staged = status.get("staged")
    if staged:
        reasons.append(REASON_STAGED)
        if staged.get("download_only"):
            reasons.append(REASON_FINALIZATION_LOCKED)
    if status.get("rollback_queued"):
        reasons.append(REASON_ROLLBACK)
    return reboot_verdict(reasons)


# --- kernel arguments an image carries (/usr/lib/bootc/kargs.d) -----------------------------------------------

KARGS_D = "usr/lib/bootc/kargs.d"
# bootc matches match-architectures against Rust's std::env::consts::ARCH, which names some machines otherwise.
RUST_ARCH = {"ppc64le": "powerpc64", "ppc64": "powerpc64", "armv7l": "arm", "i686": "x86"}
_TOML_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'')


def _toml_array(text: str, key: str) -> Optional[list]:
    """The strings of ``key = [ ... ]`` in a kargs.d file (the subset bootc's files use), or None without the key."""
    match = re.search(r"(?m)^[ \t]*%s[ \t]*=[ \t]*\[(.*?)\]" % re.escape(key), text, re.S)
    if match is None:
        return None
    body = "\n".join(_without_comment(line) for line in match.group(1).split("\n"))
    found = []
    for double, single in _TOML_STRING.findall(body):
        found.append(json.loads('"%s"' % double) if double or not single else single)
    return found


def _without_comment(line: str) -> str:
    """A TOML line up to its ``#`` comment (a ``#`` inside a string is text)."""
    quote = None
    escaped = False
    for position, char in enumerate(line):
        if quote == '"' and escaped:
            escaped = False
        elif quote == '"' and char == "\\":
            escaped = True
        elif quote and char == quote:
            quote = None
        elif not quote and char in "\"'":
            quote = char
        elif not quote and char == "#":
            return line[:position]
    return line


def image_kargs(files: dict, machine: str) -> list:
    """The kernel arguments of an image's ``kargs.d`` (file name -> text), in file-name order, those whose
    ``match-architectures`` leave this machine out dropped, as bootc reads them when it stages the image."""
    arch = RUST_ARCH.get(machine, machine)
    kargs = []
    for name in sorted(files):
        if not name.endswith(".toml"):
            continue
        text = files[name]
        arches = _toml_array(text, "match-architectures")
        if arches is not None and arch not in arches:
            continue
        kargs += _toml_array(text, "kargs") or []
    return kargs
