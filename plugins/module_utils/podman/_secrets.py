# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Podman secrets of the system or of a rootless user (the unit of ``immutable.hosts.podman_secret``): the secret read
back with ``podman secret inspect --showsecret`` and compared exactly, written with ``podman secret create --replace``
from standard input (never on a command line), removed with ``podman secret rm``.  The data never appears in a
result, a diff or a message.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import re

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import MAX_CONTENT
from ansible_collections.immutable.hosts.plugins.module_utils.podman._instance import Instance

# The data ends with a marker so that line breaks at its end compare exactly (podman adds one of its own).
END = "|end"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_MISSING_RE = re.compile(r"no such secret|no secret with name or id", re.I)


class SecretError(HostsError):
    """A secret podman cannot read or write; the message never holds the data."""


def validate_name(name) -> str:
    """A secret name as podman takes it: letters, digits, ``_.-``, at most 253 characters."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 253:
        raise SecretError(
            "secret name %r is not valid: letters, digits and _ . - only, starting with a letter or digit, at most 253"
            % (name if isinstance(name, str) and len(name) < 80 else "(too long)",)
        )
    return name


def inspect_argv(name: str) -> list:
    return ["podman", "secret", "inspect", "--showsecret", "--format", "{{.SecretData}}" + END, name]


def parse_inspect(rc: int, stdout: str, stderr: str):
    """The secret's data, or None when podman has no secret of that name."""
    if rc != 0:
        if _MISSING_RE.search(stderr or ""):
            return None
        raise SecretError("podman secret inspect failed (exit code %d): %s" % (rc, (stderr or "").strip()[-500:]))
    text = stdout[:-1] if stdout.endswith("\n") else stdout
    if not text.endswith(END):
        raise SecretError("podman secret inspect printed no data; podman 4.7 or later is needed (--showsecret)")
    return text[: -len(END)]


def plan_secret(current, data, state: str) -> tuple:
    """(action: create, replace, remove or None; diff).  The diff says whether the data matches, never what it is."""
    before = (
        {"state": "absent"}
        if current is None
        else {"state": "present", "data": "(as wanted)" if current == data else "(other data)"}
    )
    if state == "absent":
        return ("remove" if current is not None else None), {"before": before, "after": {"state": "absent"}}
    after = {"state": "present", "data": "(as wanted)"}
    if current is None:
        return "create", {"before": before, "after": after}
    return ("replace" if current != data else None), {"before": before, "after": after}


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    user=dict(type="str"),
    data=dict(type="str", no_log=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


class SecretUnit:
    """``immutable.hosts.podman_secret``: one Podman secret of the system or of a rootless user."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS = dict(required_if=[("state", "present", ("data",))])

    def desired(self, params: dict, host) -> dict:
        name = validate_name(params["name"])
        instance = Instance(host, params["user"])
        data = params["data"]
        if params["state"] == "present" and data is None:
            raise SecretError("state=present needs data")
        if data is not None and len(data) > MAX_CONTENT:
            raise SecretError("the data of secret %s is %d characters long; at most %d" % (name, len(data), MAX_CONTENT))
        if data is not None and "\x00" in data:
            raise SecretError("the data of secret %s holds a NUL byte, which podman secret create cannot read" % name)
        return {"name": name, "user": params["user"], "scope": instance.scope, "data": data, "state": params["state"]}

    def read(self, host, desired: dict):
        instance = Instance(host, desired["user"])
        if not host.which("podman"):
            raise SecretError("podman is not installed on this host")
        if instance.scope == "user" and not host.check_mode and instance.lingering() and not instance.manager_running():
            # Linger was just turned on (the user's resource, earlier in this run): the user's systemd instance and
            # its runtime directory are on their way; Podman keeps its runtime files there.
            instance.ensure_manager(False)
        if instance.scope == "user" and host.check_mode and not host.exists(instance.runtime_dir):
            # No session, linger off or only planned: Podman would refuse the runtime root its database recorded, or
            # set the user's storage up, which check mode must not do.
            host.warn(
                "the secrets of %s cannot be read while that user has no runtime directory (%s: no session, linger "
                "off); the plan assumes secret %s is missing" % (desired["user"], instance.runtime_dir, desired["name"])
            )
            return None
        result = instance.run(inspect_argv(desired["name"]), check=False)
        return parse_inspect(result.rc, result.stdout, result.stderr)

    def plan(self, current, desired: dict) -> Plan:
        action, diff = plan_secret(current, desired["data"], desired["state"])
        result = {"name": desired["name"], "user": desired["user"], "scope": desired["scope"], "action": action}
        return Plan(changed=action is not None, diff=diff, actions=action, result=result)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        instance = Instance(host, desired["user"])
        if plan.actions == "remove":
            instance.run(["podman", "secret", "rm", desired["name"]])
        else:
            instance.run(["podman", "secret", "create", "--replace", desired["name"], "-"], stdin=desired["data"])


UNIT = SecretUnit()
