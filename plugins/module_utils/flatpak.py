# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Flatpak: parse its real output into data, plan remotes, refs and overrides, and build the few command lines.

State is read with ``--columns=`` listings (tab-separated when stdout is not a terminal; ``:f`` keeps every value
whole), override keyfiles and the remotes' GPG keyrings, never from English messages.  Verified against the
outputs of flatpak 1.14.10 and 1.16.6 under ``tests/unit/fixtures/flatpak``.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._text import (
    BREAKS_AND_CONTROLS,
    check_value,
    shorten,
    split_lines,
)

LIST_COLUMNS = ("application", "branch", "arch", "origin", "ref", "active", "runtime", "installation", "options")
REMOTE_COLUMNS = ("name", "url", "title", "comment", "priority", "filter", "collection", "options")
UPDATE_COLUMNS = ("application", "branch", "arch", "origin", "ref", "commit")

SCOPES = ("system", "user")
APP_STATES = ("present", "absent", "latest")
KINDS = ("app", "runtime")
DEFAULT_SYSTEM_DIR = "/var/lib/flatpak"
DEFAULT_CONFIG_DIR = "/etc/flatpak"

# os.uname().machine -> flatpak's arch names (flatpak_get_arch)
_ARCHES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}

_ID_ELEMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_LAST_ELEMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_ARCH_RE = re.compile(r"^[A-Za-z0-9_]+\Z")
_REMOTE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_CONTROL_RE = BREAKS_AND_CONTROLS


class FlatpakError(ValueError):
    """Bad input or output that cannot be understood; ``str()`` is a message for ``fail_json``."""


def columns_arg(columns: tuple) -> str:
    return "--columns=" + ",".join(column + ":f" for column in columns)


def host_arch(machine: Optional[str] = None) -> str:
    machine = machine or os.uname().machine
    if machine in _ARCHES:
        return _ARCHES[machine]
    if machine.startswith("arm"):
        return "arm"
    return machine


# --- validation ---------------------------------------------------------------------------------------------------


def is_valid_id(name: str) -> bool:
    """flatpak_is_valid_name: at least three dot-separated elements, none starting with a digit, '-' only in the last."""
    if not isinstance(name, str) or not 0 < len(name) <= 255:
        return False
    parts = name.split(".")
    if len(parts) < 3:
        return False
    return all(_ID_ELEMENT_RE.match(p) for p in parts[:-1]) and bool(_LAST_ELEMENT_RE.match(parts[-1]))


def is_valid_branch(branch: str) -> bool:
    return isinstance(branch, str) and bool(_BRANCH_RE.match(branch))


def is_valid_arch(arch: str) -> bool:
    return isinstance(arch, str) and bool(_ARCH_RE.match(arch))


def validate_remote_name(name) -> str:
    if not isinstance(name, str) or not _REMOTE_NAME_RE.match(name) or len(name) > 255:
        shown = shorten(name) if isinstance(name, str) else name
        raise FlatpakError(
            "remote name %r is not valid: letters, digits and . _ - only, not starting with . or -, at most 255" % (shown,)
        )
    return name


def validate_text(value, what: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FlatpakError("%s must be one line of text, got %r" % (what, value))
    return check_value(value, what, FlatpakError)


def parse_ref(spec, default_arch: str) -> dict:
    """A ref the user asks for: ``ID``, ``ID//BRANCH``, ``ID/ARCH/BRANCH`` or ``app|runtime/ID/ARCH/BRANCH``.

    Returns ``{"kind", "id", "arch", "branch", "spec"}``; kind and branch are None when not given (any branch
    matches, flatpak picks the remote's default when installing); arch defaults to ``default_arch``.
    """
    if isinstance(spec, str):
        check_value(spec, "ref", FlatpakError)
    if not isinstance(spec, str) or not spec or " " in spec:
        raise FlatpakError("ref %r is not valid: give ID, ID//BRANCH or app/ID/ARCH/BRANCH" % (spec,))
    if spec.startswith(("http://", "https://", "file://")) or spec.endswith((".flatpakref", ".flatpak")):
        raise FlatpakError("ref %r: .flatpakref URLs and bundles are not refs; give the application ID" % spec)
    parts = spec.split("/")
    kind = None
    if parts[0] in KINDS:
        if len(parts) != 4:
            raise FlatpakError("ref %r is not valid: a full ref is %s/ID/ARCH/BRANCH" % (spec, parts[0]))
        kind, parts = parts[0], parts[1:]
    if len(parts) == 1:
        ident, arch, branch = parts[0], "", ""
    elif len(parts) == 3:
        ident, arch, branch = parts
        if not arch and not branch:
            raise FlatpakError("ref %r is not valid: ID// needs a branch after the //" % spec)
    else:
        raise FlatpakError("ref %r is not valid: give ID, ID//BRANCH, ID/ARCH/BRANCH or app/ID/ARCH/BRANCH" % spec)
    if not is_valid_id(ident):
        raise FlatpakError(
            "%r is not a valid flatpak ID: at least three dot-separated elements of letters, digits and _, "
            "not starting with a digit, '-' only in the last" % ident
        )
    if arch and not is_valid_arch(arch):
        raise FlatpakError("ref %r has an invalid arch %r" % (spec, arch))
    if branch and not is_valid_branch(branch):
        raise FlatpakError("ref %r has an invalid branch %r" % (spec, branch))
    return {"kind": kind, "id": ident, "arch": arch or default_arch, "branch": branch or None, "spec": spec}


def parse_refs(specs: list, default_arch: str) -> list:
    wants, seen = [], set()
    for spec in specs:
        want = parse_ref(spec, default_arch)
        key = (want["kind"], want["id"], want["arch"], want["branch"])
        if key in seen:
            raise FlatpakError("ref %r is listed twice" % spec)
        seen.add(key)
        wants.append(want)
    return wants


# --- parsing listings -----------------------------------------------------------------------------------------------


def _rows(text: str, columns: tuple) -> list:
    rows = []
    for line in split_lines(text):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) > len(columns):
            raise FlatpakError("unexpected flatpak output (%d columns, asked for %d): %r" % (len(fields), len(columns), line))
        fields += [""] * (len(columns) - len(fields))
        rows.append(dict(zip(columns, fields)))
    return rows


def _options(value: str) -> list:
    return [option for option in value.split(",") if option]


def _dash(value: str) -> Optional[str]:
    return None if value in ("", "-") else value


def parse_list(text: str) -> list:
    """``flatpak list --columns=<LIST_COLUMNS>`` into refs: kind, id, arch, branch, origin, full ref, short commit."""
    refs = []
    for row in _rows(text, LIST_COLUMNS):
        options = _options(row["options"])
        kind = "runtime" if "runtime" in options else "app"
        parts = row["ref"].split("/")
        if len(parts) != 3:
            raise FlatpakError("unexpected ref %r in flatpak list" % row["ref"])
        runtime = _dash(row["runtime"])
        refs.append(
            {
                "kind": kind,
                "id": parts[0],
                "arch": parts[1],
                "branch": parts[2],
                "ref": "%s/%s" % (kind, row["ref"]),
                "origin": row["origin"],
                "commit": row["active"],
                "runtime": "runtime/" + runtime if runtime else None,
                "installation": row["installation"],
                "current": "current" in options,
            }
        )
    return refs


def parse_remotes(text: str) -> dict:
    """``flatpak remotes --show-disabled --columns=<REMOTE_COLUMNS>`` into {name: remote}."""
    remotes = {}
    for row in _rows(text, REMOTE_COLUMNS):
        options = _options(row["options"])
        try:
            priority = int(row["priority"])
        except ValueError:
            raise FlatpakError("unexpected priority %r of remote %s" % (row["priority"], row["name"])) from None
        remotes[row["name"]] = {
            "name": row["name"],
            "url": row["url"],
            "title": _dash(row["title"]),
            "comment": _dash(row["comment"]),
            "priority": priority,
            "filter": _dash(row["filter"]),
            "collection_id": _dash(row["collection"]),
            "enabled": "disabled" not in options,
            "gpg_verify": "no-gpg-verify" not in options,
        }
    return remotes


def parse_updates(text: str) -> list:
    """``flatpak remote-ls --updates --columns=<UPDATE_COLUMNS>``: the full refs that have a newer commit."""
    return sorted({row["ref"] for row in _rows(text, UPDATE_COLUMNS)})


# --- keyfiles ---------------------------------------------------------------------------------------------------------

_GROUP_RE = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
_UNESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def keyfile_unescape(value: str) -> str:
    """A keyfile value as ``g_key_file_get_string`` reads it: ``\\s``, ``\\n``, ``\\t``, ``\\r`` and ``\\\\`` unescaped
    (an unknown escape is kept as written)."""
    if "\\" not in value:
        return value
    out, index = [], 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value) and value[index + 1] in _UNESCAPES:
            out.append(_UNESCAPES[value[index + 1]])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def keyfile_escape(value: str) -> str:
    """A value as ``g_key_file_set_string`` writes it: backslashes doubled, a leading blank as ``\\s``."""
    value = value.replace("\\", "\\\\")
    return "\\s" + value[1:] if value.startswith(" ") else value


def parse_keyfile(text: str) -> dict:
    """A GLib keyfile into {group: {key: value}}, in file order, values unescaped; comments and blank lines are dropped.

    Lines end at ``\\n`` only, as GLib reads them."""
    groups: dict = {}
    current = None
    for raw in split_lines(text):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _GROUP_RE.match(line)
        if match:
            current = groups.setdefault(match.group("name"), {})
            continue
        if current is None or "=" not in line:
            raise FlatpakError("not a keyfile line: %r" % raw)
        key, value = line.split("=", 1)
        current[key.strip()] = keyfile_unescape(value.strip())
    return groups


def render_keyfile(groups: dict) -> str:
    blocks = []
    for group, values in groups.items():
        if not values:
            continue
        lines = ["[%s]" % group] + ["%s=%s" % (key, keyfile_escape(value)) for key, value in values.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def parse_flatpakrepo(text: str) -> dict:
    """A ``.flatpakrepo`` file: url, GPG key bytes, title, comment, collection id (None where absent)."""
    try:
        groups = parse_keyfile(text)
    except FlatpakError as exc:
        raise FlatpakError("not a .flatpakrepo file: %s" % exc) from None
    repo = groups.get("Flatpak Repo")
    if not repo or not repo.get("Url"):
        raise FlatpakError("not a .flatpakrepo file: no [Flatpak Repo] group with a Url")
    key = None
    if repo.get("GPGKey"):
        try:
            key = base64.b64decode(repo["GPGKey"], validate=True)
        except ValueError:
            raise FlatpakError("the .flatpakrepo GPGKey is not valid base64") from None
    return {
        "url": repo["Url"],
        "gpg_key": key,
        "title": repo.get("Title"),
        "comment": repo.get("Comment"),
        "collection_id": repo.get("DeploymentCollectionID") or repo.get("CollectionID"),
    }


# --- installations -----------------------------------------------------------------------------------------------------


def custom_installations(config_texts: list) -> dict:
    """``installations.d/*.conf`` contents into {name: path}."""
    found = {}
    for text in config_texts:
        for group, values in parse_keyfile(text).items():
            match = re.match(r'^Installation "(?P<name>[^"]+)"$', group)
            if match and values.get("Path"):
                found[match.group("name")] = values["Path"]
    return found


def installation_dir(
    scope: str, installation: Optional[str], environ: dict, home: Optional[str] = None, custom: Optional[dict] = None
) -> str:
    """Where the installation lives: FLATPAK_SYSTEM_DIR or /var/lib/flatpak; FLATPAK_USER_DIR, XDG_DATA_HOME/flatpak
    or HOME/.local/share/flatpak (``home`` given: another user's, whose default applies); a custom installation's Path."""
    if installation:
        custom = custom or {}
        if installation not in custom:
            raise FlatpakError("no flatpak installation named %r (none in installations.d)" % installation)
        return custom[installation]
    if scope == "system":
        return environ.get("FLATPAK_SYSTEM_DIR") or DEFAULT_SYSTEM_DIR
    if home is not None:
        return os.path.join(home, ".local/share/flatpak")
    if environ.get("FLATPAK_USER_DIR"):
        return environ["FLATPAK_USER_DIR"]
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(environ.get("HOME") or "/", ".local/share")
    return os.path.join(data_home, "flatpak")


def scope_args(scope: str, installation: Optional[str]) -> list:
    if installation:
        return ["--installation=" + installation]
    return ["--user"] if scope == "user" else ["--system"]


def pinned_patterns(repo_config_text: str) -> list:
    """Runtimes pinned against ``uninstall --unused`` (``xa.pinned`` in the installation's repo/config)."""
    core = parse_keyfile(repo_config_text).get("core", {})
    return [item for item in core.get("xa.pinned", "").split(";") if item]


# --- OpenPGP keys: fingerprints, so keys compare as data and never show up whole ---------------------------------------

_ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"


def is_armored(text) -> bool:
    return isinstance(text, str) and text.lstrip().startswith("-----BEGIN PGP")


def dearmor(text: str) -> bytes:
    lines = split_lines(text.strip())
    if not lines or lines[0].strip() != _ARMOR_BEGIN:
        raise FlatpakError("not an ASCII-armoured OpenPGP public key block (it must begin with %s)" % _ARMOR_BEGIN)
    body, in_body = [], False
    for line in lines[1:]:
        line = line.strip()
        if line.startswith("-----END PGP"):
            break
        if not in_body:
            if not line:
                in_body = True
            elif ":" not in line:
                in_body = True
                body.append(line)
            continue
        if line.startswith("="):
            break
        body.append(line)
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise FlatpakError("the ASCII-armoured GPG key is not valid base64") from None


def _packets(data: bytes):
    """OpenPGP packets (RFC 4880 section 4.2) as (tag, body); malformed or truncated data is a FlatpakError."""
    pos = 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x80:
            raise FlatpakError("not OpenPGP key data (bad packet header at byte %d)" % pos)
        if header & 0x40:
            tag = header & 0x3F
            if pos + 1 >= len(data):
                raise FlatpakError("truncated OpenPGP key data")
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                if pos + 2 >= len(data):
                    raise FlatpakError("truncated OpenPGP key data")
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                if pos + 6 > len(data):
                    raise FlatpakError("truncated OpenPGP key data")
                length, pos = struct.unpack_from(">I", data, pos + 2)[0], pos + 6
            else:
                raise FlatpakError("OpenPGP partial body lengths do not occur in keys")
        else:
            tag, length_type = (header >> 2) & 0x0F, header & 0x03
            if length_type == 3:
                length, pos = len(data) - pos - 1, pos + 1
            else:
                size = 1 << length_type
                if pos + 1 + size > len(data):
                    raise FlatpakError("truncated OpenPGP key data")
                length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
                pos += 1 + size
        if pos + length > len(data):
            raise FlatpakError("truncated OpenPGP key data")
        yield tag, data[pos : pos + length]
        pos += length


def key_fingerprints(data) -> list:
    """Fingerprints of the primary public keys in OpenPGP data (binary or ASCII armour), in order."""
    if isinstance(data, str):
        data = dearmor(data)
    fingerprints = []
    try:
        for tag, body in _packets(data):
            if tag == 5:
                raise FlatpakError("the GPG key is a SECRET key; give the public key (gpg --export, not --export-secret-keys)")
            if tag != 6 or not body:
                continue
            version = body[0]
            if version == 4 and len(body) > 0xFFFF:
                raise FlatpakError("not OpenPGP key data (a version 4 key packet of %d bytes)" % len(body))
            if version == 4:
                digest = hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + body).hexdigest()  # noqa: S324 - RFC 4880
            elif version in (5, 6):
                digest = hashlib.sha256(bytes([0x95 + version]) + struct.pack(">I", len(body)) + body).hexdigest()
            else:
                raise FlatpakError("OpenPGP version %d keys are not supported" % version)
            fingerprints.append(digest.upper())
    except IndexError:
        raise FlatpakError("truncated OpenPGP key data") from None
    if not fingerprints:
        raise FlatpakError("no OpenPGP public key found in the GPG key data")
    return fingerprints


# --- remotes -------------------------------------------------------------------------------------------------------------

REMOTE_FIELDS = ("url", "title", "comment", "priority", "filter", "collection_id", "enabled", "gpg_verify")


def _remote_view(remote: Optional[dict], keys: Optional[list]) -> dict:
    if remote is None:
        return {"state": "absent"}
    view = {"state": "present"}
    view.update({field: remote.get(field) for field in REMOTE_FIELDS})
    view["gpg_keys"] = sorted(keys or [])
    return view


def plan_remote(current: Optional[dict], current_keys: Optional[list], desired: dict, state: str) -> dict:
    """From the remote as listed (None when missing) and the fingerprints in its keyring to ``desired``.

    ``desired`` holds REMOTE_FIELDS and ``gpg_keys`` (fingerprints); a value of None leaves that field as it is
    (``filter: False`` means no filter).  Returns ``{"changed", "action": add|modify|delete|None, "set": {field:
    value}, "import_key", "before", "after"}``.
    """
    before = _remote_view(current, current_keys)
    if state == "absent":
        action = "delete" if current is not None else None
        return {
            "changed": bool(action),
            "action": action,
            "set": {},
            "import_key": False,
            "before": before,
            "after": {"state": "absent"},
        }
    wanted_keys = desired.get("gpg_keys") or []
    if current is None:
        after = {"state": "present", "title": None, "comment": None, "priority": 1, "filter": None, "collection_id": None}
        after.update({"enabled": True, "gpg_verify": True})
        after.update({field: desired[field] for field in REMOTE_FIELDS if desired.get(field) is not None})
        after["filter"] = desired.get("filter") or None
        after["gpg_keys"] = sorted(wanted_keys)
        after = _ordered(after)
        setting = {field: desired[field] for field in REMOTE_FIELDS if desired.get(field) is not None}
        return {
            "changed": True,
            "action": "add",
            "set": setting,
            "import_key": bool(wanted_keys),
            "before": before,
            "after": after,
        }
    setting = {}
    for field in REMOTE_FIELDS:
        want = desired.get(field)
        if want is None:
            continue
        have = current.get(field)
        if field == "filter":
            want = want or None
        if want != have:
            setting[field] = want
    import_key = bool(set(wanted_keys) - set(current_keys or []))
    after = dict(before)
    after.update(setting)
    if import_key:
        after["gpg_keys"] = sorted(set(current_keys or []) | set(wanted_keys))
    changed = bool(setting or import_key)
    return {
        "changed": changed,
        "action": "modify" if changed else None,
        "set": setting,
        "import_key": import_key,
        "before": before,
        "after": after,
    }


def _ordered(view: dict) -> dict:
    return {key: view.get(key) for key in ("state", *REMOTE_FIELDS, "gpg_keys")}


def remote_argv(plan: dict, name: str, scope: list, key_file: Optional[str] = None, repo_file: Optional[str] = None) -> list:
    """The flatpak argv (without the binary) of a remote plan; ``repo_file`` is a local .flatpakrepo copy for adding."""
    action, setting = plan["action"], plan["set"]
    if action == "delete":
        return ["remote-delete", *scope, "--force", name]
    argv = ["remote-add" if action == "add" else "remote-modify", *scope]
    if action == "add" and repo_file:
        argv.append("--from")
    if plan["import_key"]:
        argv.append("--gpg-import=" + key_file)
    if "gpg_verify" in setting:
        if not setting["gpg_verify"]:
            argv.append("--no-gpg-verify")
        elif action == "modify":
            argv.append("--gpg-verify")
    if action == "modify" and "url" in setting:
        argv.append("--url=" + setting["url"])
    for field, flag in (("title", "--title="), ("comment", "--comment="), ("collection_id", "--collection-id=")):
        if field in setting:
            argv.append(flag + setting[field])
    if "priority" in setting:
        argv.append("--prio=%d" % setting["priority"])
    if "filter" in setting:
        if setting["filter"]:
            argv.append("--filter=" + setting["filter"])
        elif action == "modify":
            argv.append("--no-filter")
    if "enabled" in setting:
        if not setting["enabled"]:
            argv.append("--disable")
        elif action == "modify":
            argv.append("--enable")
    argv.append(name)
    if action == "add":
        argv.append(repo_file or setting["url"])
    return argv


# --- apps and runtimes ---------------------------------------------------------------------------------------------------


def matches(want: dict, ref: dict, remote: Optional[str], check_origin: bool = True) -> bool:
    """Exact matching: ID, arch, branch (when given), kind (when given) and origin (when a remote is given)."""
    if want["id"] != ref["id"] or want["arch"] != ref["arch"]:
        return False
    if want["branch"] is not None and want["branch"] != ref["branch"]:
        return False
    if want["kind"] is not None and want["kind"] != ref["kind"]:
        return False
    return not (check_origin and remote is not None and ref["origin"] != remote)


def install_arg(want: dict) -> str:
    if want["kind"] and want["branch"]:
        return "%s/%s/%s/%s" % (want["kind"], want["id"], want["arch"], want["branch"])
    return "%s/%s/%s" % (want["id"], want["arch"], want["branch"] or "")


def plan_apps(
    installed: list,
    wants: list,
    state: str,
    remote: Optional[str],
    exclusive: bool = False,
    updates: Optional[list] = None,
) -> dict:
    """From the installed refs (``parse_list``) to the wanted ones.

    Returns ``{"changed", "install": [args], "update": [full refs], "reinstall": bool, "uninstall": [full refs],
    "before", "after"}``.  A ref installed from another remote does not count as installed: it is reinstalled from
    ``remote`` (``flatpak install --reinstall``), in the same single install call as the missing ones.
    """
    if state not in APP_STATES:
        raise FlatpakError("state must be one of %s" % ", ".join(APP_STATES))
    if state in ("present", "latest") and not remote:
        raise FlatpakError("state=%s needs the remote to install from" % state)
    outdated = set(updates or [])
    install, update, uninstall, reinstall = [], [], [], False
    if state == "absent":
        for ref in installed:
            if any(matches(want, ref, remote) for want in wants) and ref["ref"] not in uninstall:
                uninstall.append(ref["ref"])
    else:
        for want in wants:
            found = [ref for ref in installed if matches(want, ref, remote)]
            if found:
                if state == "latest":
                    update += [ref["ref"] for ref in found if ref["ref"] in outdated and ref["ref"] not in update]
                continue
            if any(matches(want, ref, remote, check_origin=False) for ref in installed):
                reinstall = True
            install.append(install_arg(want))
        if exclusive:
            for ref in installed:
                if ref["kind"] != "app" or ref["ref"] in uninstall:
                    continue
                if not any(matches(want, ref, remote, check_origin=False) for want in wants):
                    uninstall.append(ref["ref"])
    before = {ref["ref"]: ref["origin"] for ref in installed}
    after = {ref: origin for ref, origin in before.items() if ref not in uninstall}
    for want in wants:
        if state != "absent" and install_arg(want) in install:
            for ref in [r for r in installed if matches(want, r, remote, check_origin=False)]:
                if want["branch"] is not None or not any(matches(want, r, remote) for r in installed):
                    after.pop(ref["ref"], None)
            after[install_arg(want)] = remote
    diff_before = {"refs": dict(sorted(before.items()))}
    diff_after = {"refs": dict(sorted(after.items()))}
    if state == "latest":
        diff_before["outdated"] = sorted(r for r in outdated if r in before)
        diff_after["outdated"] = sorted(r for r in outdated if r in after and r not in update)
    return {
        "changed": bool(install or update or uninstall),
        "install": install,
        "update": update,
        "reinstall": reinstall,
        "uninstall": uninstall,
        "before": diff_before,
        "after": diff_after,
    }


def install_argv(plan: dict, remote: str, scope: list, no_related: bool = False) -> Optional[list]:
    """One ``flatpak install`` for every missing, outdated and wrong-origin ref, or None."""
    refs = plan["install"] + plan["update"]
    if not refs:
        return None
    argv = ["install", *scope, "--noninteractive", "-y"]
    argv += ["--no-related"] if no_related else []
    argv += ["--or-update"] if plan["update"] else []
    argv += ["--reinstall"] if plan["reinstall"] else []
    return argv + [remote, *refs]


def uninstall_argv(plan: dict, scope: list, no_related: bool = False) -> Optional[list]:
    if not plan["uninstall"]:
        return None
    argv = ["uninstall", *scope, "--noninteractive", "-y"]
    argv += ["--no-related"] if no_related else []
    return argv + list(plan["uninstall"])


def unused_runtimes(installed_after: list, pinned: list, keep: list) -> list:
    """Runtimes ``flatpak uninstall --unused`` would likely remove: used by no app, not pinned, not an extension
    (``ID.*``) of a ref that stays, not asked for.  An estimate: flatpak decides, this only spares a process."""
    used = {ref["runtime"] for ref in installed_after if ref["kind"] == "app" and ref["runtime"]}
    staying = [ref for ref in installed_after if ref["kind"] == "app" or ref["ref"] in used]
    candidates = []
    for ref in installed_after:
        if ref["kind"] != "runtime" or ref["ref"] in used or ref["ref"] in keep:
            continue
        if any(_pin_matches(pattern, ref["ref"]) for pattern in pinned):
            continue
        if any(ref["id"].startswith(other["id"] + ".") for other in staying):
            continue
        candidates.append(ref["ref"])
    return candidates


def _pin_matches(pattern: str, ref: str) -> bool:
    want, have = pattern.split("/"), ref.split("/")
    if len(want) != len(have):
        return False
    return all(w in ("", "*") or w == h for w, h in zip(want, have))


# --- overrides ------------------------------------------------------------------------------------------------------------

# option -> (keyfile key in [Context], negated?)
CONTEXT_LISTS = {
    "shares": ("shared", False),
    "unshares": ("shared", True),
    "sockets": ("sockets", False),
    "nosockets": ("sockets", True),
    "devices": ("devices", False),
    "nodevices": ("devices", True),
    "features": ("features", False),
    "filesystems": ("filesystems", False),
    "nofilesystems": ("filesystems", True),
}
CONTEXT_KEYS = ("shared", "sockets", "devices", "features", "filesystems", "persistent")
BUS_OPTIONS = {"talk_names": ("Session Bus Policy", "talk"), "own_names": ("Session Bus Policy", "own")}
BUS_OPTIONS["system_talk_names"] = ("System Bus Policy", "talk")
OVERRIDE_OPTIONS = tuple(CONTEXT_LISTS) + ("persist", "environment", "unset_environment") + tuple(BUS_OPTIONS)

SHARES = ("network", "ipc")
SOCKETS = (
    "x11",
    "wayland",
    "fallback-x11",
    "pulseaudio",
    "session-bus",
    "system-bus",
    "ssh-auth",
    "pcsc",
    "cups",
    "gpg-agent",
    "inherit-wayland-socket",
)
DEVICES = ("dri", "input", "usb", "kvm", "shm", "all")
FEATURES = ("devel", "multiarch", "bluetooth", "canbus", "per-app-dev-shm")
_FS_MODES = ("ro", "rw", "create")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_BUS_NAME_RE = re.compile(r"^[A-Za-z_\-][A-Za-z0-9_\-]*(\.[A-Za-z_\-][A-Za-z0-9_\-]*)+(\.\*)?\Z")


def _entry_key(entry: str) -> str:
    entry = entry[1:] if entry.startswith("!") else entry
    if entry.rsplit(":", 1)[-1] in _FS_MODES and ":" in entry:
        entry = entry.rsplit(":", 1)[0]
    return entry


def parse_override(text: str) -> dict:
    """An override keyfile (``flatpak override --show`` or <installation>/overrides/APP) into data.

    ``context`` maps each [Context] list to {key: entry} (``home`` -> ``home:ro``, ``x11`` -> ``!x11``);
    ``environment`` and ``unset_environment`` are the variables set and unset; ``session_bus`` and ``system_bus``
    map bus names to talk/own/see/none; ``other`` keeps groups and keys this module does not manage.
    """
    groups = parse_keyfile(text)
    context = groups.get("Context", {})
    data = {"context": {}, "environment": {}, "unset_environment": [], "session_bus": {}, "system_bus": {}, "other": {}}
    for key in CONTEXT_KEYS:
        entries = [item for item in context.get(key, "").split(";") if item]
        if entries:
            data["context"][key] = {_entry_key(entry): entry for entry in entries}
    unset = [item for item in context.get("unset-environment", "").split(";") if item]
    data["unset_environment"] = sorted(set(unset))
    data["environment"] = {k: v for k, v in groups.get("Environment", {}).items() if k not in unset}
    data["session_bus"] = dict(groups.get("Session Bus Policy", {}))
    data["system_bus"] = dict(groups.get("System Bus Policy", {}))
    for group, values in groups.items():
        if group in ("Environment", "Session Bus Policy", "System Bus Policy"):
            continue
        if group == "Context":
            values = {k: v for k, v in values.items() if k not in CONTEXT_KEYS and k != "unset-environment"}
        if values:
            data["other"][group] = dict(values)
    return data


def render_override(data: dict) -> str:
    """The keyfile flatpak writes for ``data``: unset variables go both to unset-environment and, empty, to
    [Environment], as flatpak itself writes them."""
    context = {}
    for key in CONTEXT_KEYS:
        entries = data["context"].get(key)
        if entries:
            context[key] = "".join(entry + ";" for _key, entry in sorted(entries.items()))
    if data["unset_environment"]:
        context["unset-environment"] = "".join(name + ";" for name in sorted(data["unset_environment"]))
    context.update(data["other"].get("Context", {}))
    groups = {"Context": context}
    groups["Session Bus Policy"] = dict(sorted(data["session_bus"].items()))
    groups["System Bus Policy"] = dict(sorted(data["system_bus"].items()))
    environment = dict(sorted(data["environment"].items()))
    environment.update(dict.fromkeys(sorted(data["unset_environment"]), ""))
    groups["Environment"] = environment
    for group, values in data["other"].items():
        if group != "Context":
            groups[group] = dict(values)
    return render_keyfile(groups)


def _is_empty(data: dict) -> bool:
    return not (
        any(data["context"].values())
        or data["environment"]
        or data["unset_environment"]
        or data["session_bus"]
        or data["system_bus"]
        or any(data["other"].values())
    )


def _validate_list(name: str, values: list, allowed: Optional[tuple] = None) -> list:
    result = []
    for value in values or []:
        if isinstance(value, str):
            check_value(value, "%s entry" % name, FlatpakError)
        if not isinstance(value, str) or not value or ";" in value or "=" in value:
            raise FlatpakError("%s entries are non-empty strings without ; = or control characters, got %r" % (name, value))
        bare = value[1:] if name == "features" and value.startswith("!") else value
        if allowed is not None and bare not in allowed:
            raise FlatpakError("%s: unknown value %r (flatpak knows %s)" % (name, value, ", ".join(allowed)))
        result.append(value)
    return result


def _validate_filesystem(name: str, value: str, negated: bool) -> str:
    if value.startswith("!"):
        raise FlatpakError("%s: %r: write denials in nofilesystems, without '!'" % (name, value))
    path, mode = value.rsplit(":", 1) if ":" in value else (value, "")
    if mode and mode not in _FS_MODES:
        raise FlatpakError("%s: %r: the mode after ':' is ro, rw or create" % (name, value))
    if negated and mode:
        raise FlatpakError("%s: %r takes no :%s mode" % (name, value, mode))
    head = path.split("/")[0]
    known = ("host", "host-os", "host-etc", "home", "host-root") + tuple(
        "xdg-" + d
        for d in (
            "desktop",
            "documents",
            "download",
            "music",
            "pictures",
            "public-share",
            "templates",
            "videos",
            "run",
            "config",
            "cache",
            "data",
        )
    )
    if not (path.startswith(("/", "~/")) or path == "~" or head in known):
        raise FlatpakError(
            "%s: %r is not a filesystem flatpak knows: an absolute path, ~/path, home, host, host-os, host-etc or xdg-*"
            % (name, value)
        )
    return value


def validate_override(params: dict) -> dict:
    """The override options, checked and normalised: {option: list or dict}."""
    allowed = {"shares": SHARES, "unshares": SHARES, "sockets": SOCKETS, "nosockets": SOCKETS, "devices": DEVICES}
    allowed.update({"nodevices": DEVICES, "features": FEATURES})
    result = {}
    for option in CONTEXT_LISTS:
        values = _validate_list(option, params.get(option), allowed.get(option))
        if option in ("filesystems", "nofilesystems"):
            values = [_validate_filesystem(option, value, option == "nofilesystems") for value in values]
        result[option] = values
    for yes, no in (("shares", "unshares"), ("sockets", "nosockets"), ("devices", "nodevices")):
        both = set(result[yes]) & set(result[no])
        if both:
            raise FlatpakError("%s and %s both list %s" % (yes, no, ", ".join(sorted(both))))
    both = {_entry_key(v) for v in result["filesystems"]} & {_entry_key(v) for v in result["nofilesystems"]}
    if both:
        raise FlatpakError("filesystems and nofilesystems both list %s" % ", ".join(sorted(both)))
    persist = _validate_list("persist", params.get("persist"))
    for path in persist:
        if path.startswith("/") or ".." in path.split("/"):
            raise FlatpakError("persist: %r must be a path relative to the home directory, without '..'" % path)
    result["persist"] = persist
    environment = params.get("environment") or {}
    for name, value in environment.items():
        if not _ENV_NAME_RE.match(str(name)):
            raise FlatpakError("environment: %r is not a valid variable name" % (name,))
        if value is None:
            raise FlatpakError("environment: the value of %s must be a string; use unset_environment to unset it" % name)
        check_value(str(value), "environment: the value of %s" % name, FlatpakError)
    result["environment"] = {str(k): str(v) for k, v in environment.items()}
    unset = _validate_list("unset_environment", params.get("unset_environment"))
    for name in unset:
        if not _ENV_NAME_RE.match(name):
            raise FlatpakError("unset_environment: %r is not a valid variable name" % name)
        if name in result["environment"]:
            raise FlatpakError("%s is both set in environment and listed in unset_environment" % name)
    result["unset_environment"] = unset
    for option in BUS_OPTIONS:
        names = _validate_list(option, params.get(option))
        for name in names:
            if not _BUS_NAME_RE.match(name) or len(name) > 255:
                raise FlatpakError("%s: %r is not a D-Bus well-known name (org.example.Name, optionally .*)" % (option, name))
        result[option] = names
    both = set(result["talk_names"]) & set(result["own_names"])
    if both:
        raise FlatpakError("talk_names and own_names both list %s; own implies talk" % ", ".join(sorted(both)))
    return result


def _empty_override() -> dict:
    return {"context": {}, "environment": {}, "unset_environment": [], "session_bus": {}, "system_bus": {}, "other": {}}


def override_view(data: dict) -> dict:
    """Data for the diff: lists of entries, as the user writes them."""
    view = {key: sorted(entries.values()) for key, entries in sorted(data["context"].items()) if entries}
    if data["environment"]:
        view["environment"] = dict(sorted(data["environment"].items()))
    if data["unset_environment"]:
        view["unset_environment"] = sorted(data["unset_environment"])
    if data["session_bus"]:
        view["session_bus"] = dict(sorted(data["session_bus"].items()))
    if data["system_bus"]:
        view["system_bus"] = dict(sorted(data["system_bus"].items()))
    if any(data["other"].values()):
        view["other"] = {group: dict(values) for group, values in data["other"].items() if values}
    return view


def plan_override(current: dict, options: dict, mode: str, state: str) -> dict:
    """From the current override data to the wanted one.

    ``mode=merge`` sets the given entries over the current ones (an entry of the same name is replaced:
    ``home:ro`` replaces ``home``, ``!x11`` replaces ``x11``); ``mode=exact`` makes the override exactly the given
    entries.  ``state=absent`` removes the given entries, or the whole override when none are given.
    Returns ``{"changed", "data", "text", "remove_file", "before", "after"}``.
    """
    given = any(options.get(option) for option in OVERRIDE_OPTIONS)
    if state == "absent":
        wanted = _empty_override() if not given else _without(current, options)
    else:
        wanted = _empty_override() if mode == "exact" else _copy(current)
        for option, (key, negated) in CONTEXT_LISTS.items():
            for value in options.get(option) or []:
                if option == "features" and value.startswith("!"):
                    value, negated_value = value[1:], True
                else:
                    negated_value = negated
                wanted["context"].setdefault(key, {})[_entry_key(value)] = ("!" if negated_value else "") + value
        for path in options.get("persist") or []:
            wanted["context"].setdefault("persistent", {})[path] = path
        for name, value in (options.get("environment") or {}).items():
            wanted["environment"][name] = value
            if name in wanted["unset_environment"]:
                wanted["unset_environment"].remove(name)
        for name in options.get("unset_environment") or []:
            wanted["environment"].pop(name, None)
            if name not in wanted["unset_environment"]:
                wanted["unset_environment"].append(name)
        for option, (group, policy) in BUS_OPTIONS.items():
            bus = wanted["session_bus"] if group == "Session Bus Policy" else wanted["system_bus"]
            for name in options.get(option) or []:
                bus[name] = policy
    wanted["context"] = {key: entries for key, entries in wanted["context"].items() if entries}
    wanted["unset_environment"] = sorted(wanted["unset_environment"])
    before, after = override_view(current), override_view(wanted)
    empty = _is_empty(wanted)
    return {
        "changed": before != after,
        "data": wanted,
        "text": "" if empty else render_override(wanted),
        "remove_file": empty,
        "before": before,
        "after": after,
    }


def _copy(data: dict) -> dict:
    return {
        "context": {key: dict(entries) for key, entries in data["context"].items()},
        "environment": dict(data["environment"]),
        "unset_environment": list(data["unset_environment"]),
        "session_bus": dict(data["session_bus"]),
        "system_bus": dict(data["system_bus"]),
        "other": {group: dict(values) for group, values in data["other"].items()},
    }


def _without(current: dict, options: dict) -> dict:
    wanted = _copy(current)
    for option, (key, _negated) in CONTEXT_LISTS.items():
        for value in options.get(option) or []:
            wanted["context"].get(key, {}).pop(_entry_key(value.lstrip("!")), None)
    for path in options.get("persist") or []:
        wanted["context"].get("persistent", {}).pop(path, None)
    for name in options.get("environment") or {}:
        wanted["environment"].pop(name, None)
    for name in options.get("unset_environment") or []:
        if name in wanted["unset_environment"]:
            wanted["unset_environment"].remove(name)
    for option, (group, _policy) in BUS_OPTIONS.items():
        bus = wanted["session_bus"] if group == "Session Bus Policy" else wanted["system_bus"]
        for name in options.get(option) or []:
            bus.pop(name, None)
    return wanted


def override_path(directory: str, app: Optional[str]) -> str:
    return os.path.join(directory, "overrides", app or "global")
