# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Package repositories for layering: one ``[id]`` section in ``/etc/yum.repos.d``, as rpm-ostree (libdnf) reads it,
and its signing key under ``/etc/pki/rpm-gpg/``. :data:`UNIT` is the module immutable.hosts.rpm_repo.

A repository this module creates gets a file of its own (``ID.repo``). One defined elsewhere (Fedora's
``fedora-cisco-openh264`` in ``fedora-cisco-openh264.repo``, a vendor's file) is edited in place: only the options
given change, every other line and comment stays (``common._keyfile.set_values``, values written raw). The files are
INI files as libdnf parses them: ``key=value`` lines in ``[section]`` groups, ``#`` and ``;`` comments, no escapes.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_content, check_value, split_lines

REPOS_DIR = "/etc/yum.repos.d"
KEYS_DIR = "/etc/pki/rpm-gpg"
REPO_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")
URL = re.compile(r"^(https?|ftp|file)://\S+\Z")
PGP_KEY = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----\n[\s\S]+?-----END PGP PUBLIC KEY BLOCK-----")
SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
MARKER = "# Managed by Ansible (immutable.hosts.rpm_repo)."


class RepoError(HostsError, ValueError):
    pass


def parse_sections(text: str) -> dict:
    """section -> {key: value} of a .repo file (the last value of a key wins, as in libdnf)."""
    sections: dict = {}
    current = None
    for line in split_lines(text):
        match = SECTION.match(line)
        if match:
            current = sections.setdefault(match.group("name").strip(), {})
            continue
        stripped = line.strip()
        if current is None or not stripped or stripped.startswith(("#", ";")) or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        current[key.strip()] = value.strip()
    return sections


def render_section(section: str, values: dict) -> str:
    lines = [MARKER, "[%s]" % section] + ["%s=%s" % (k, v) for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def flag(value: Optional[bool]) -> Optional[str]:
    return None if value is None else ("1" if value else "0")


def same(current: Optional[str], wanted: str) -> bool:
    """libdnf reads booleans as 1/0, yes/no, true/false, on/off; lists split at blanks and commas."""
    if current is None:
        return False
    truth = {"1": "1", "yes": "1", "true": "1", "on": "1", "0": "0", "no": "0", "false": "0", "off": "0"}
    if wanted in ("0", "1") and current.lower() in truth:
        return truth[current.lower()] == wanted
    return re.split(r"[\s,]+", current.strip()) == re.split(r"[\s,]+", wanted.strip())


class RpmRepoUnit:
    ARGUMENT_SPEC = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        description=dict(type="str"),
        baseurl=dict(type="list", elements="str"),
        metalink=dict(type="str"),
        mirrorlist=dict(type="str"),
        enabled=dict(type="bool"),
        gpgcheck=dict(type="bool"),
        repo_gpgcheck=dict(type="bool"),
        gpgkey=dict(type="list", elements="str", no_log=False),
        key=dict(type="str", no_log=False),
        priority=dict(type="int"),
        path=dict(type="path"),
    )
    MODULE_OPTIONS = dict(mutually_exclusive=[("baseurl", "metalink", "mirrorlist")])

    def desired(self, params: dict, _host) -> dict:
        name = params["name"]
        check_value(name, "name", RepoError)
        if not REPO_ID.match(name):
            raise RepoError("name is a repository id of letters, digits and _.:- (at most 128), not %r" % name)
        for url in (
            (params["baseurl"] or []) + (params["gpgkey"] or []) + [u for u in (params["metalink"], params["mirrorlist"]) if u]
        ):
            check_value(url, "URL", RepoError)
            if not URL.match(url.replace("$releasever", "x").replace("$basearch", "x")):
                raise RepoError("%r is not an http(s)://, ftp:// or file:// URL" % url)
        if params["priority"] is not None and not 1 <= params["priority"] <= 99:
            raise RepoError("priority is between 1 (first) and 99 (the default)")
        key = params["key"]
        if key is not None:
            key = check_content(key.strip() + "\n", "key", RepoError)
            if not PGP_KEY.search(key):
                raise RepoError("key is an ASCII-armored OpenPGP public key (-----BEGIN PGP PUBLIC KEY BLOCK-----)")
        if params["description"] is not None:
            check_value(params["description"], "description", RepoError)
        key_path = "%s/RPM-GPG-KEY-%s" % (KEYS_DIR, name.replace(":", "-")) if key is not None else None
        gpgkey = list(params["gpgkey"] or [])
        if key_path is not None and "file://" + key_path not in gpgkey:
            gpgkey.insert(0, "file://" + key_path)
        values = {
            "name": params["description"],
            "baseurl": " ".join(params["baseurl"]) if params["baseurl"] else None,
            "metalink": params["metalink"],
            "mirrorlist": params["mirrorlist"],
            "enabled": flag(params["enabled"]),
            "gpgcheck": flag(params["gpgcheck"]),
            "repo_gpgcheck": flag(params["repo_gpgcheck"]),
            "gpgkey": " ".join(gpgkey) if gpgkey else None,
            "priority": None if params["priority"] is None else str(params["priority"]),
        }
        return {
            "name": name,
            "state": params["state"],
            "values": values,
            "key": key,
            "key_path": key_path,
            "path": params["path"],
        }

    def read(self, host, desired: dict) -> dict:
        found: dict = {}
        for path in host.glob(REPOS_DIR + "/*.repo"):
            text = host.read_text(path)
            if text is not None:
                found[path] = text
        return {"files": found, "key": host.read_text(desired["key_path"]) if desired["key_path"] else None}

    def plan(self, current: dict, desired: dict) -> Plan:
        name, values = desired["name"], desired["values"]
        holders = [path for path, text in sorted(current["files"].items()) if name in parse_sections(text)]
        path = desired["path"] or (holders[0] if holders else "%s/%s.repo" % (REPOS_DIR, name))
        others = [p for p in holders if p != path]
        if others:
            raise RepoError(
                "repository %s is also defined in %s; libdnf refuses duplicate ids: remove it there" % (name, ", ".join(others))
            )
        text = current["files"].get(path)
        section = parse_sections(text or "").get(name)
        actions: dict = {"text": None, "remove": False, "key": None}
        if desired["state"] == "absent":
            if section is not None:
                remaining = {k: v for k, v in parse_sections(text).items() if k != name}
                actions["remove"] = not remaining
                actions["text"] = None if not remaining else _without_section(text, name)
        else:
            if section is None:
                if values["baseurl"] is None and values["metalink"] is None and values["mirrorlist"] is None:
                    raise RepoError("a new repository needs baseurl, metalink or mirrorlist")
                new = {**values, "name": values["name"] or name}
                new["enabled"] = new["enabled"] or "1"
                new["gpgcheck"] = new["gpgcheck"] or "1"  # signatures are checked unless the task says otherwise
                actions["text"] = (text + "\n" if text else "") + render_section(name, new)
            else:
                wanted = {k: v for k, v in values.items() if v is not None and not same(section.get(k), v)}
                sources = ("baseurl", "metalink", "mirrorlist")
                given = [k for k in sources if values[k] is not None]
                drop = tuple(k for k in sources if given and k not in given and k in section)
                if wanted or drop:
                    actions["text"] = keyfile.set_values(text, name, wanted, remove=drop, raw=True)
            if desired["key"] is not None and current["key"] != desired["key"]:
                actions["key"] = desired["key"]
        after_text = "" if actions["remove"] else (actions["text"] if actions["text"] is not None else text or "")
        diff = [{"before": text or "", "after": after_text, "before_header": path, "after_header": path}]
        if actions["key"] is not None:
            diff.append(
                {
                    "before": current["key"] or "",
                    "after": actions["key"],
                    "before_header": desired["key_path"],
                    "after_header": desired["key_path"],
                }
            )
        after = parse_sections(after_text).get(name)
        return Plan(
            changed=actions["text"] is not None or actions["remove"] or actions["key"] is not None,
            diff=diff,
            actions=dict(actions, path=path),
            result={"path": path, "repo": after, "key_path": desired["key_path"]},
        )

    def apply(self, host, plan: Plan, desired: dict) -> None:
        actions = plan.actions
        if actions["key"] is not None:
            with files.open_directory(host.path(KEYS_DIR), create={host.path(KEYS_DIR): 0o755}) as opened:
                opened.write(desired["key_path"].rsplit("/", 1)[1], actions["key"], 0o644)
        directory, name = actions["path"].rsplit("/", 1)
        if actions["text"] is not None:
            with files.open_directory(host.path(directory), create={host.path(directory): 0o755}) as opened:
                current = opened.attributes(name)
                opened.write(name, actions["text"], int(current["mode"], 8) if current else 0o644)
        elif actions["remove"]:
            opened = files.open_directory(host.path(directory))
            if opened is not None:
                with opened:
                    opened.remove(name)


def _without_section(text: str, section: str) -> str:
    out, skipping = [], False
    for line in split_lines(text):
        match = SECTION.match(line)
        if match:
            skipping = match.group("name").strip() == section
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


UNIT = RpmRepoUnit()
