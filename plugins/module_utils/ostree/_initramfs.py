# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The client-side initramfs: regeneration with dracut arguments (``rpm-ostree initramfs``) and the ``/etc`` files
copied into it (``rpm-ostree initramfs-etc``), read from the deployment changes stack on.

``rpm-ostree initramfs --enable`` is not idempotent (it fails when regeneration is already on, unless arguments are
given, which then replace the old ones), so the plan calls it only for a real change; ``initramfs-etc`` takes every
``--track`` and ``--untrack`` in one call. Each is one transaction stacked on the same pending deployment as the other
changes; both show as ``layering-changed`` in the reboot reasons. :data:`UNIT` is the module immutable.hosts.initramfs.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import posixpath
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._status import REASON_LAYERING


class InitramfsError(HostsError, ValueError):
    pass


def check_etc_path(path: str) -> str:
    """A file for ``initramfs-etc``: absolute, normalised, below /etc (rpm-ostree refuses anything else)."""
    check_value(path, "etc path", InitramfsError)
    if not path.startswith("/") or posixpath.normpath(path) != path or path.startswith("//"):
        raise InitramfsError("etc paths are absolute and normalised (/etc/crypttab), not %r" % path)
    if not path.startswith("/etc/") or path == "/etc/":
        raise InitramfsError("%s is outside /etc; rpm-ostree copies only files below /etc into the initramfs" % path)
    if "," in path:
        raise InitramfsError("%s contains a comma, which rpm-ostree's list of tracked files cannot hold" % path)
    return path


def check_arg(arg: str) -> str:
    check_value(arg, "initramfs argument", InitramfsError)
    if not arg or arg != arg.strip() or " " in arg:
        raise InitramfsError("initramfs arguments are single dracut arguments without blanks (--add=tpm2-tss), not %r" % arg)
    return arg


def plan_initramfs(current: dict, regenerate: Optional[bool], args: Optional[list], etc: Optional[list], etc_exact: bool) -> dict:
    """From the deployment's state (``regenerate_initramfs``, ``initramfs_args``, ``initramfs_etc``) to the calls:
    ``{"changed", "before", "after", "calls": [argv, ...]}``."""
    enabled = bool(current.get("regenerate_initramfs"))
    have_args = list(current.get("initramfs_args") or []) if enabled else []
    tracked = list(current.get("initramfs_etc") or [])
    if regenerate is None and args:
        regenerate = True  # dracut arguments are for a regenerated initramfs
    want_enabled = enabled if regenerate is None else regenerate
    want_args = have_args if args is None else list(args)
    if not want_enabled:
        want_args = []
    enable, disable = ["initramfs", "--enable", *["--arg=" + a for a in want_args]], ["initramfs", "--disable"]
    initramfs_calls: list = []
    if want_enabled and not enabled:
        initramfs_calls = [enable]
    elif want_enabled and want_args != have_args:
        # Arguments replace the old ones; but --enable without any on an enabled host is refused ("already enabled"),
        # so clearing them takes --disable, then --enable.
        initramfs_calls = [enable] if want_args else [disable, enable]
    elif not want_enabled and enabled:
        initramfs_calls = [disable]
    want_tracked = tracked if etc is None else (sorted(set(etc)) if etc_exact else sorted(set(tracked) | set(etc)))
    track = [p for p in want_tracked if p not in tracked]
    untrack = [p for p in tracked if p not in want_tracked]
    etc_argv = None
    if track or untrack:
        etc_argv = [
            "initramfs-etc",
            "--unchanged-exit-77",
            *["--track=" + p for p in track],
            *["--untrack=" + p for p in untrack],
        ]
    before = {"regenerate": enabled, "args": have_args, "etc": sorted(tracked)}
    after = {"regenerate": want_enabled, "args": want_args, "etc": sorted(want_tracked)}
    calls = initramfs_calls + ([etc_argv] if etc_argv else [])
    return {"changed": before != after, "before": before, "after": after, "calls": calls}


class InitramfsUnit:
    """immutable.hosts.initramfs: what the deployment changes stack on regenerates and tracks."""

    ARGUMENT_SPEC = dict(
        regenerate=dict(type="bool"),
        args=dict(type="list", elements="str"),
        etc=dict(type="list", elements="str"),
        etc_exact=dict(type="bool", default=False),
        **reader.COMMON_ARGUMENT_SPEC,
    )
    MODULE_OPTIONS = dict(required_one_of=[("regenerate", "args", "etc")])

    def desired(self, params: dict, _host) -> dict:
        reader.check_common(params)
        if params["args"] is not None:
            if params["regenerate"] is False and params["args"]:
                raise InitramfsError("args are dracut arguments for a regenerated initramfs: they need regenerate=true")
            params["args"] = [check_arg(a) for a in params["args"]]
        if params["etc"] is not None:
            params["etc"] = [check_etc_path(p) for p in params["etc"]]
        elif params["etc_exact"]:
            raise InitramfsError("etc_exact makes etc the whole list of tracked files: give etc (an empty list tracks none)")
        return params

    def read(self, host, desired: dict) -> dict:
        reader.require_rpm_ostree(host)
        return reader.merge(reader.status(host))

    def plan(self, current: dict, desired: dict) -> Plan:
        found = plan_initramfs(current, desired["regenerate"], desired["args"], desired["etc"], desired["etc_exact"])
        return Plan(
            changed=found["changed"],
            diff={"before": found["before"], "after": found["after"]},
            actions=found["calls"],
            result={"initramfs": found["after"]},
            reboot_reasons=[REASON_LAYERING],
        )

    def prepare(self, host, plan: Plan, desired: dict) -> None:
        reader.prepare(host, desired)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        for argv in plan.actions:
            reader.transaction(host, argv, desired)

    def report(self, host, plan: Plan, _desired: dict) -> dict:
        return reader.report(host, plan.changed, plan.reboot_reasons)


UNIT = InitramfsUnit()
