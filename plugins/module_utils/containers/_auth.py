# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Registry credentials in a containers-auth.json(5) file. :data:`UNIT` is the module immutable.hosts.registry_auth.

``system``: ``/etc/ostree/auth.json``, the file rpm-ostree and bootc (ostree-ext) hand to the image proxy; they never
read ``/run/containers/0/auth.json`` or root's Podman files. ``user``: ``~/.config/containers/auth.json`` of a user,
which rootless Podman reads (after ``$XDG_RUNTIME_DIR/containers/auth.json``, which does not survive a reboot), written
as that user's file by descriptor. Either file is mode 0600; other registries' entries are kept. The secret is compared
and never shown: the diff and the result say whether it changed.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value

# A registry host[:port], optionally with a namespace or repository: the keys of containers-auth.json(5), which name
# registries as policy.json's scopes do.
from ansible_collections.immutable.hosts.plugins.module_utils.containers._policy import REPOSITORY as REGISTRY

SYSTEM_FILE = "/etc/ostree/auth.json"
USER_FILE = ".config/containers/auth.json"
HIDDEN = "(hidden)"
CHANGED = "(changed)"


class AuthError(HostsError):
    """Credentials that cannot be written, or a file that cannot be read as containers-auth.json."""


def entry_for(username: str, password: str) -> dict:
    return {"auth": base64.b64encode(("%s:%s" % (username, password)).encode()).decode()}


def credentials_of(entry: Any) -> Optional[tuple]:
    """(username, password) of an ``auths`` entry, or None when it holds none that can be read."""
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
        return None
    try:
        decoded = base64.b64decode(entry["auth"], validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def parse(text: Optional[str], path: str) -> dict:
    if text is None or not text.strip():
        return {"auths": {}}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AuthError("%s is not valid JSON (%s); fix or remove it first" % (path, exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
        raise AuthError('%s is not a containers-auth.json file (an object with "auths")' % path)
    data.setdefault("auths", {})
    return data


def shown(entry: Any) -> Optional[dict]:
    """What the diff shows of an entry: the user name, never the secret."""
    credentials = credentials_of(entry)
    if entry is None:
        return None
    return {"username": credentials[0] if credentials else None, "password": HIDDEN}


class RegistryAuthUnit:
    ARGUMENT_SPEC = dict(
        registry=dict(type="str", required=True),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        scope=dict(type="str", default="system", choices=["system", "user"]),
        user=dict(type="str"),
        path=dict(type="path"),
    )
    MODULE_OPTIONS = dict(required_if=[("state", "present", ("username", "password")), ("scope", "user", ("user",))])

    def desired(self, params: dict, host) -> dict:
        registry = params["registry"]
        check_value(registry, "registry", AuthError)
        if registry.startswith(("http://", "https://")) or not REGISTRY.match(registry):
            raise AuthError(
                "registry is a registry host[:port], optionally with a namespace (registry.example.com:5000/team), "
                "not %r" % registry
            )
        if params["state"] == "present":
            check_value(params["username"], "username", AuthError)
            if ":" in params["username"] or not params["username"]:
                raise AuthError("username is not empty and has no ':' (auth.json stores user:password)")
            check_value(params["password"], "password", AuthError)
            if not params["password"]:
                raise AuthError("password is empty")
        if params["scope"] == "system":
            if params["user"] is not None:
                raise AuthError("user is for scope=user (a rootless Podman user's credentials)")
            path = params["path"] or SYSTEM_FILE
            if not path.startswith("/"):
                raise AuthError("path is an absolute path")
            owner = None
        else:
            if params["path"] is not None:
                raise AuthError("path is for scope=system; a user's credentials go to ~/%s" % USER_FILE)
            entry = host.user(params["user"])
            if entry is None:
                raise AuthError("user %s does not exist" % params["user"])
            owner = {"name": params["user"], "uid": entry.pw_uid, "gid": entry.pw_gid, "home": entry.pw_dir}
            path = os.path.join(entry.pw_dir, USER_FILE)
        return {
            "registry": registry,
            "state": params["state"],
            "entry": entry_for(params["username"], params["password"]) if params["state"] == "present" else None,
            "credentials": (params["username"], params["password"]) if params["state"] == "present" else None,
            "path": path,
            "owner": owner,
        }

    def _open(self, host, desired: dict, create: bool):
        directory = os.path.dirname(desired["path"])
        owner = desired["owner"]
        if owner is None:
            return files.open_directory(host.path(directory), create={host.path(directory): 0o700} if create else None)
        home = host.path(owner["home"])
        modes = {os.path.join(home, ".config"): 0o700, host.path(directory): 0o700}
        return files.open_directory(host.path(directory), owner["uid"], owner["gid"], home=home, create=modes if create else None)

    def read(self, host, desired: dict) -> Optional[str]:
        directory = self._open(host, desired, create=False)
        if directory is None:
            return None
        with directory:
            return directory.read_text(os.path.basename(desired["path"]))

    def plan(self, current: Optional[str], desired: dict) -> Plan:
        path, registry = desired["path"], desired["registry"]
        data = parse(current, path)
        before = data["auths"].get(registry)
        if desired["state"] == "present":
            same = credentials_of(before) == desired["credentials"]
            changed = not same
            after_entry = before if same else desired["entry"]
        else:
            changed = before is not None
            after_entry = None
        new_data = json.loads(json.dumps(data))
        if after_entry is None:
            new_data["auths"].pop(registry, None)
        else:
            new_data["auths"][registry] = after_entry
        before_shown, after_shown = shown(before), shown(after_entry)
        if changed and before is not None and after_entry is not None:
            after_shown = dict(after_shown or {}, password=CHANGED)
        return Plan(
            changed=changed,
            diff={
                "before": {"path": path, "auths": {registry: before_shown}},
                "after": {"path": path, "auths": {registry: after_shown}},
            },
            actions=json.dumps(new_data, indent="\t") + "\n" if changed else None,
            result={
                "path": path,
                "registry": registry,
                "present": after_entry is not None,
                "secret_changed": changed and after_entry is not None,
            },
        )

    def apply(self, host, plan: Plan, desired: dict) -> None:
        directory = self._open(host, desired, create=True)
        with directory:
            directory.write(os.path.basename(desired["path"]), plan.actions, 0o600)


UNIT = RegistryAuthUnit()
