# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel arguments: validate what the user asks for, plan the one ``rpm-ostree kargs`` call that gets there.

The comparison is on the pending deployment's arguments; ``ostree=`` belongs to OSTree and is never touched.
Arguments follow the kernel's own command-line rules (lib/cmdline.c): blanks separate them except inside double
quotes, which are the only quoting there is, and an argument is compared as written, quotes included.

``rpm-ostree kargs --replace=KEY=OLD=NEW`` splits at the first ``=`` after the key, so an old value that holds
``=`` itself (``root=UUID=1111``) cannot be replaced that way; such a change deletes the old argument and appends
the new one, in the same call.

On a host without rpm-ostree that bootc manages, kernel arguments come with the image (``/usr/lib/bootc/kargs.d``,
applied when bootc stages it): the arguments of the next boot are compared all the same, a converged host is no
change, and a change is refused with where it belongs; the result names the image's own arguments.

The planning functions are pure; :data:`UNIT` is the module immutable.hosts.kargs.  Standard library only, Python 3.9+.
"""

from __future__ import annotations

import re

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import bad_character
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _bootc as bootc
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._admin import split_kargs

STATES = ("present", "absent", "exact")
# COMMAND_LINE_SIZE of x86_64 and arm64: the kernel truncates a longer command line, so no argument may be longer.
MAX_ARG = 2048
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")


class InvalidKarg(HostsError, ValueError):
    pass


def key_of(arg: str) -> str:
    return arg.split("=", 1)[0]


def validate(args: list) -> list:
    """The user's arguments, checked: no control characters, a sane key, nothing for ``ostree=``, no duplicates."""
    seen = set()
    result = []
    for arg in args:
        if not isinstance(arg, str) or not arg:
            raise InvalidKarg("kernel arguments are non-empty strings, got %r" % (arg,))
        if len(arg) > MAX_ARG:
            raise InvalidKarg(
                "kernel argument %s... is %d characters long; the kernel reads at most %d of its whole command line"
                % (arg[:40], len(arg), MAX_ARG)
            )
        found = bad_character(arg, allow=" ")
        if found:
            raise InvalidKarg("kernel argument %r contains %s, a line break or control character" % (arg, found))
        if arg.count('"') % 2:
            raise InvalidKarg('kernel argument %r has an unbalanced double quote; quote a value as key="a b"' % arg)
        if split_kargs(arg) != [arg]:
            raise InvalidKarg(
                "kernel argument %r contains a blank outside double quotes; give each argument as its own list item, "
                'and quote a value with blanks as key="a b"' % arg
            )
        key = key_of(arg)
        if not _KEY_RE.match(key):
            raise InvalidKarg("kernel argument %r has an invalid key %r" % (arg, key))
        if key == "ostree":
            raise InvalidKarg("the ostree= argument is managed by OSTree itself and cannot be set or removed")
        if arg in seen:
            raise InvalidKarg("kernel argument %r is listed twice" % arg)
        seen.add(arg)
        result.append(arg)
    return result


def _managed(current: list) -> list:
    return [arg for arg in current if key_of(arg) != "ostree"]


def plan_kargs(current: list, args: list, state: str) -> dict:
    """Plan from the pending deployment's arguments ``current`` to the desired ``args`` under ``state``.

    Returns ``{"changed", "before", "after", "append", "delete", "replace", "argv"}``; ``argv`` holds the
    ``rpm-ostree kargs`` flags (empty when nothing changes).
    """
    if state not in STATES:
        raise InvalidKarg("state must be one of %s" % ", ".join(STATES))
    args = validate(args)
    before = _managed(current)
    after = list(before)
    append, delete, replace = [], [], []
    if state in ("present", "exact"):
        for arg in args:
            if arg in after:
                continue
            key = key_of(arg)
            same_key = [have for have in after if key_of(have) == key]
            wanted_for_key = [want for want in args if key_of(want) == key]
            replaceable = len(same_key) == 1 and "=" in same_key[0] and "=" not in same_key[0].split("=", 1)[1]
            if "=" in arg and len(same_key) == 1 and len(wanted_for_key) == 1 and replaceable:
                old = same_key[0]
                replace.append("%s=%s=%s" % (key, old.split("=", 1)[1], arg.split("=", 1)[1]))
                after[after.index(old)] = arg
            else:
                if "=" in arg and state == "present":
                    for old in [have for have in same_key if have not in args]:
                        delete.append(old)
                        after.remove(old)
                append.append(arg)
                after.append(arg)
    if state == "absent":
        for arg in args:
            matches = [have for have in after if have == arg or ("=" not in arg and key_of(have) == arg)]
            for old in matches:
                delete.append(old)
                after.remove(old)
    if state == "exact":
        for old in [have for have in after if have not in args]:
            delete.append(old)
            after.remove(old)
    argv = ["--replace=" + item for item in replace]
    argv += ["--delete-if-present=" + item for item in delete]
    argv += ["--append-if-missing=" + item for item in append]
    return {
        "changed": bool(argv),
        "before": before,
        "after": after,
        "append": append,
        "delete": delete,
        "replace": replace,
        "argv": argv,
    }


# --- the unit ----------------------------------------------------------------------------------------------------------


class KargsUnit:
    """immutable.hosts.kargs: the arguments of the deployment changes stack on, changed in one ``rpm-ostree kargs``."""

    ARGUMENT_SPEC = dict(
        args=dict(type="list", elements="str", required=True),
        state=dict(type="str", choices=list(STATES), default="present"),
        **reader.COMMON_ARGUMENT_SPEC,
    )
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, _host) -> dict:
        reader.check_common(params)
        plan_kargs([], params["args"], params["state"])  # every argument checked before anything runs
        return params

    def read(self, host, desired: dict):
        if reader.bootc_only(host):
            return read_bootc(host)
        reader.require_rpm_ostree(host)
        current = reader.status(host)
        merge = reader.merge(current)
        kargs = reader.kargs_of(host, current, merge)
        if kargs is None:
            raise reader.OstreeHostError("cannot read the kernel arguments of deployment %s" % merge["id"])
        return kargs

    def plan(self, current, desired: dict) -> Plan:
        if isinstance(current, dict):
            return plan_bootc(current, desired)
        found = plan_kargs(current, desired["args"], desired["state"])
        return Plan(
            changed=found["changed"],
            diff={"before": {"kargs": found["before"]}, "after": {"kargs": found["after"]}},
            actions=found["argv"],
            result={
                "kargs": found["after"],
                "changes": {"append": found["append"], "delete": found["delete"], "replace": found["replace"]},
            },
            reboot_reasons=["kargs-changed"],
        )

    def prepare(self, host, plan: Plan, desired: dict) -> None:
        reader.prepare(host, desired)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        reader.transaction(host, ["kargs", "--unchanged-exit-77", *plan.actions], desired)

    def report(self, host, plan: Plan, _desired: dict) -> dict:
        if "image_kargs" in plan.result:
            return reader.bootc_report(host, plan.changed, plan.reboot_reasons)
        return reader.report(host, plan.changed, plan.reboot_reasons, merge_kargs=plan.result["kargs"])


def read_bootc(host) -> dict:
    """A bootc host: the kernel arguments of the deployment that boots next (its boot entry) and those its image
    carries in ``kargs.d``."""
    status = reader.bootc_status(host)
    entry = status.get("staged") or status.get("booted")
    if entry is None or entry.get("checksum") is None or entry.get("serial") is None:
        raise reader.OstreeHostError("bootc reports no deployment whose kernel arguments could be read")
    kargs = reader.boot_kargs(host).get((entry["checksum"], entry["serial"]))
    if kargs is None:
        raise reader.OstreeHostError(
            "cannot read the kernel arguments of deployment %s.%s" % (entry["checksum"], entry["serial"])
        )
    tree = reader.deployment_dir(entry["stateroot"], entry["checksum"], entry["serial"])
    files = {}
    for path in host.glob("%s/%s/*.toml" % (tree, bootc.KARGS_D)):
        text = host.read_text(path)
        if text is not None:
            files[path.rsplit("/", 1)[1]] = text
    return {"kargs": kargs, "image_kargs": bootc.image_kargs(files, host.machine()), "staged": entry["role"] == "staged"}


def plan_bootc(current: dict, desired: dict) -> Plan:
    """Compare as on rpm-ostree; a change is not bootc's to make on the host, so it is refused with where it belongs."""
    found = plan_kargs(current["kargs"], desired["args"], desired["state"])
    if found["changed"]:
        added = [arg for arg in found["after"] if arg not in found["before"]]
        removed = [arg for arg in found["before"] if arg not in found["after"]]
        steps = (["add " + ", ".join(added)] if added else []) + (["remove " + ", ".join(removed)] if removed else [])
        raise InvalidKarg(
            "this host has no rpm-ostree: bootc manages it, and its kernel arguments come with the image; %s in "
            "/usr/lib/bootc/kargs.d/*.toml of the image (kargs = [...]), and the next bootc upgrade applies them"
            % " and ".join(steps)
        )
    return Plan(
        changed=False,
        diff={"before": {"kargs": found["before"]}, "after": {"kargs": found["after"]}},
        actions=[],
        result={
            "kargs": found["after"],
            "image_kargs": current["image_kargs"],
            "changes": {"append": [], "delete": [], "replace": []},
        },
        reboot_reasons=[],
    )


UNIT = KargsUnit()
