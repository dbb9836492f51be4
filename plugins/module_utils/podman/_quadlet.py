# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Podman Quadlet units (the unit of ``immutable.hosts.quadlet``): the candidate validated by Podman's own generator
in dry-run mode before anything on the host changes, the plan from the file on disk and the generated service's
state to the wanted unit, and the file written as its owner, by descriptor.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._files import UnsafePath
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import RunnerError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import split_lines
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet_keys as keys
from ansible_collections.immutable.hosts.plugins.module_utils.podman._instance import Instance, is_running

GENERATOR_PATHS = (
    "/usr/libexec/podman/quadlet",
    "/usr/lib/systemd/system-generators/podman-system-generator",
    "/usr/lib/systemd/user-generators/podman-user-generator",
    "/usr/local/libexec/podman/quadlet",
    "/usr/lib/podman/quadlet",
)
FILE_MODE = 0o644
SECTION_OPTIONS = keys.KINDS + ("quadlet", "unit", "service", "install")

_GENERATOR_PREFIX_RE = re.compile(r"^quadlet-generator\[\d+\]: ")
_DRYRUN_HEADER_RE = re.compile(r"^---(?P<name>[^\s]+\.service)---\Z")
# The generator's words for a unit that refers to another Quadlet unit that does not exist (yet).
MISSING_SIBLING_RE = re.compile(r"(?:quadlet \w+ unit \S+ does not exist|requested Quadlet unit \S+ was not found)")


# --- the generator ----------------------------------------------------------------------------------------------------


def generator_argv(generator: str, user: bool) -> list:
    return [generator, "-dryrun"] + (["-user"] if user else [])


def parse_dryrun(stdout: str, stderr: str, rc: int) -> dict:
    """``quadlet -dryrun`` output as ``{"rc", "units": {service: text}, "errors": [...], "warnings": [...]}``.

    stdout holds ``---NAME.service---`` headers, each followed by that unit's text; stderr holds log lines, with or
    without the ``quadlet-generator[PID]:`` prefix.  Loading notices are dropped; ``Warning:`` lines are warnings;
    the rest are errors.
    """
    units: dict = {}
    current = None
    body: list = []
    for line in split_lines(stdout):
        match = _DRYRUN_HEADER_RE.match(line)
        if match:
            if current is not None:
                units[current] = "\n".join(body).strip("\n") + "\n"
            current, body = match.group("name"), []
        elif current is not None:
            body.append(line)
    if current is not None:
        units[current] = "\n".join(body).strip("\n") + "\n"
    errors, warnings = [], []
    for line in split_lines(stderr):
        message = _GENERATOR_PREFIX_RE.sub("", line).strip()
        if not message or message.startswith("Loading source unit file"):
            continue
        (warnings if message.startswith("Warning:") else errors).append(message)
    return {"rc": rc, "units": units, "errors": errors, "warnings": warnings}


def generator_verdict(result: dict, unit_file: str, service: str) -> Optional[str]:
    """None when the generator made ``service`` out of ``unit_file``; else its own message about the unit."""
    if service in result["units"]:
        return None
    about = [error for error in result["errors"] if unit_file in error]
    messages = about or result["errors"]
    if messages:
        return "; ".join(messages)
    return "the Quadlet generator produced no %s from %s (exit code %d)" % (service, unit_file, result["rc"])


def find_generator(host) -> Optional[str]:
    for path in GENERATOR_PATHS:
        if host.which(path):
            return path
    return None


def dryrun(host, generator: str, units: dict, user: bool) -> dict:
    """The generator's dry run (``parse_dryrun``) over ``units`` (file name -> text), in a private directory of their
    own."""
    workdir = tempfile.mkdtemp(prefix="quadlet-validate-")
    try:
        for name, text in units.items():
            with open(os.path.join(workdir, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        result = host.run(
            generator_argv(generator, user), check=False, env={"QUADLET_UNIT_DIRS": workdir}, cwd=workdir, timeout=120
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return parse_dryrun(result.stdout, result.stderr, result.rc)


def validate_with_generator(host, generator: str, directory, user: bool, unit_file: str, service: str, text: str) -> tuple:
    """Run the generator in dry-run mode on a private copy of the unit directory holding the candidate: (None when
    accepted, else the generator's message; warnings).  Sibling units are copied so references such as
    Network=app.network resolve; they are read through the directory's descriptor, and a sibling that is a link or not
    the owner's is left out (with a warning) rather than read as root."""
    units, skipped = {}, []
    for entry in directory.names() if directory is not None else []:
        if entry == unit_file or entry.rsplit(".", 1)[-1] not in keys.KINDS or entry.startswith("."):
            continue
        try:
            sibling = directory.read_text(entry)
        except UnsafePath as exc:
            skipped.append(str(exc))
            continue
        if sibling is not None:
            units[entry] = sibling
    units[unit_file] = text
    parsed = dryrun(host, generator, units, user)
    warnings = ["sibling unit not used for validation: %s" % reason for reason in skipped]
    warnings += [warning for warning in parsed["warnings"] if unit_file in warning]
    return generator_verdict(parsed, unit_file, service), warnings


# --- the plan ---------------------------------------------------------------------------------------------------------


def plan_quadlet(
    current: Optional[str],
    desired: Optional[str],
    service_state: Optional[dict],
    started: Optional[bool] = None,
    restart_on_change: bool = True,
    attributes_changed: bool = False,
    path: str = "",
    restart: bool = False,
) -> dict:
    """From the file on disk (``current``, None when missing) to ``desired`` (None: absent).

    ``service_state`` is the generated service's ``systemctl show`` properties (None when unknown); ``restart`` asks
    for a restart of a running service whose unit did not change (a secret it reads did).  Returns ``{"changed",
    "file_changed", "actions", "diff"}``; actions are, in order: ``write``/``remove``, ``attributes``,
    ``daemon-reload``, then one of ``start``/``restart``/``stop``.
    """
    actions = []
    running = is_running(service_state)
    if desired is None:
        if current is not None:
            if running:
                actions.append("stop")
            actions += ["remove", "daemon-reload"]
        file_changed = current is not None
    else:
        file_changed = current != desired
        if file_changed:
            actions.append("write")
        elif attributes_changed:
            actions.append("attributes")
        state = service_state or {}
        stale = state.get("LoadState") in ("not-found", None, "") or state.get("NeedDaemonReload") == "yes"
        if file_changed or stale:
            actions.append("daemon-reload")
        if started is False:
            if running:
                actions.append("stop")
        elif running:
            if (file_changed and restart_on_change) or restart:
                actions.append("restart")
        elif started:
            actions.append("start")
    diff = {
        "before": current or "",
        "after": desired or "",
        "before_header": path + ("" if current is not None else " (absent)"),
        "after_header": path + ("" if desired is not None else " (absent)"),
    }
    return {"changed": bool(actions), "file_changed": file_changed, "actions": actions, "diff": diff}


def shadowed_unit(state: Optional[dict], path: str) -> Optional[str]:
    """The unit file that already provides the generated service's name, when it is not this Quadlet unit."""
    state = state or {}
    if state.get("LoadState") == "masked":
        return "a mask (%s)" % (state.get("FragmentPath") or "/dev/null")
    if state.get("LoadState") == "loaded" and state.get("FragmentPath") and state.get("SourcePath") != path:
        return state.get("SourcePath") or state["FragmentPath"]
    return None


def desired_text(params: dict, scope: str) -> str:
    kind = params["kind"]
    if params["content"] is not None:
        given = [option for option in SECTION_OPTIONS if params[option] is not None]
        if given:
            raise keys.InvalidQuadlet("content excludes the section options (%s)" % ", ".join(given))
        if params["enabled"] is not None:
            raise keys.InvalidQuadlet("enabled applies to structured options; with content, write [Install] yourself")
        keys.check_content(kind, params["content"])
        text = params["content"]
        return text if text.endswith("\n") else text + "\n"
    options = {option: params[option] for option in SECTION_OPTIONS}
    return keys.render_unit(kind, options, scope, params["enabled"])


def sections_of(text: Optional[str]) -> dict:
    """The unit's sections, or none when an unmanaged file on disk does not parse (it is about to go anyway)."""
    try:
        return keys.parse_unit(text or "")
    except keys.InvalidQuadlet:
        return {}


# --- the unit ---------------------------------------------------------------------------------------------------------

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    kind=dict(type="str", choices=list(keys.KINDS), default="container"),
    user=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    enabled=dict(type="bool"),
    started=dict(type="bool"),
    restart_on_change=dict(type="bool", default=True),
    validate=dict(type="bool", default=True),
    content=dict(type="str"),
    # One dict per section: the kind's own ([Container], [Pod]...), [Quadlet], [Unit], [Service], [Install].
    **{section: dict(type="dict") for section in SECTION_OPTIONS},
)


class QuadletUnit:
    """``immutable.hosts.quadlet``: one Quadlet unit of the system or of a rootless user, and its service."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, host) -> dict:
        kind = params["kind"]
        name = keys.validate_name(params["name"], kind)
        instance = Instance(host, params["user"])
        present = params["state"] == "present"
        started = params["started"]
        if started is None and present:
            started = kind != "build"
        unit_file = keys.file_name(name, kind)
        text = desired_text(params, instance.scope) if present else None
        return {
            "name": name,
            "kind": kind,
            "user": params["user"],
            "scope": instance.scope,
            "unit_file": unit_file,
            "path": os.path.join(instance.directory, unit_file),
            "quadlet_dir": instance.directory,
            "text": text,
            # the service the desired text generates (None when absent: then the file on the host names it)
            "service": keys.service_name(name, kind, sections_of(text)) if text is not None else None,
            "started": started,
            "restart_on_change": params["restart_on_change"],
            "validate": params["validate"],
            "restart": False,  # a secret the service reads changed (immutable.hosts.host_state)
        }

    def read(self, host, desired: dict) -> dict:
        instance = Instance(host, desired["user"])
        unit_file, text = desired["unit_file"], desired["text"]
        read: dict = {"validated": False, "generator": None, "attributes": None, "state": None}
        directory = instance.open_directory(create=False)
        try:
            current = directory.read_text(unit_file) if directory is not None else None
            service = desired["service"] or keys.service_name(desired["name"], desired["kind"], sections_of(current))
            read.update(current=current, service=service)
            # The generator sees the candidate before anything on the host is touched, the user's manager included.
            if text is not None and current != text and desired["validate"]:
                read.update(self._validate(host, directory, desired, service))
            if text is not None and current is not None and directory is not None:
                read["attributes"] = attributes_differ(directory, unit_file, instance)
        finally:
            if directory is not None:
                directory.close()
        if (current is not None or text is not None) and instance.ensure_manager(host.check_mode):
            read["state"] = instance.service_state(service)
        return read

    def _validate(self, host, directory, desired: dict, service: str) -> dict:
        generator = find_generator(host)
        if not generator:
            return {}
        unit_file = desired["unit_file"]
        message, warnings = validate_with_generator(
            host, generator, directory, desired["scope"] == "user", unit_file, service, desired["text"]
        )
        validated = True
        if message and host.check_mode and MISSING_SIBLING_RE.search(message):
            # In check mode earlier tasks wrote nothing, so a unit this one refers to (a pod, a network) may be
            # missing only because this run did not create it yet: say so rather than fail the prediction.
            host.warn("cannot fully validate %s in check mode: %s" % (unit_file, message))
            validated = False
        elif message:
            raise keys.InvalidQuadlet("the Quadlet generator %s rejected %s: %s" % (generator, unit_file, message))
        for warning in warnings:
            host.warn(warning)
        return {"validated": validated, "generator": generator}

    def plan(self, current: dict, desired: dict) -> Plan:
        text, path, state = desired["text"], desired["path"], current["state"]
        other = shadowed_unit(state, path) if text is not None else None
        if other:
            raise keys.InvalidQuadlet(
                "%s would generate %s, which %s already provides for the %s instance; a Quadlet unit never shadows "
                "another unit: choose another name, or set ServiceName= (service_name) in the %s options"
                % (desired["unit_file"], current["service"], other, desired["scope"], desired["kind"])
            )
        attributes = current["attributes"]
        planned = plan_quadlet(
            current["current"],
            text,
            state,
            desired["started"],
            desired["restart_on_change"],
            bool(attributes),
            path,
            restart=desired["restart"],
        )
        diff = [planned["diff"]]
        if attributes and "write" not in planned["actions"]:
            diff.append({"before": attributes[0], "after": attributes[1]})
        active = is_running(state)
        if "stop" in planned["actions"]:
            active = False
        elif {"start", "restart"} & set(planned["actions"]):
            active = True
        result = {
            "name": desired["name"],
            "unit": desired["unit_file"],
            "path": path,
            "service": current["service"],
            "scope": desired["scope"],
            "user": desired["user"],
            "quadlet_dir": desired["quadlet_dir"],
            "validated": current["validated"],
            "generator": current["generator"],
            "actions": planned["actions"],
            "active": active,
        }
        steps = {"steps": planned["actions"], "failed": (state or {}).get("ActiveState") == "failed"}
        return Plan(changed=planned["changed"], diff=diff, actions=steps, result=result)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        instance = Instance(host, desired["user"])
        service = plan.result["service"]
        done = []
        directory = None
        try:
            for action in plan.actions["steps"]:
                if action in ("write", "attributes", "remove") and directory is None:
                    directory = instance.open_directory(create=action == "write")
                if action == "write":
                    directory.write(desired["unit_file"], desired["text"], FILE_MODE)
                elif action == "attributes":
                    directory.set_attributes(desired["unit_file"], FILE_MODE)
                elif action == "remove":
                    if directory is not None:
                        directory.remove(desired["unit_file"])
                elif action == "daemon-reload":
                    instance.systemctl(["daemon-reload"])
                else:
                    if action in ("start", "restart") and plan.actions["failed"]:
                        # A unit that hit its start limit refuses to start until its failed state is reset.
                        instance.systemctl(["reset-failed", service], check=False)
                    if action in ("start", "restart") and desired["scope"] == "user":
                        instance.ensure_user_namespace()
                    instance.systemctl([action, service])
                done.append(action)
        except (OSError, RunnerError, UnsafePath) as exc:
            if done:
                raise HostsError(
                    "the Quadlet unit %s changed the host, then %s failed after %s: %s"
                    % (desired["name"], action, ", ".join(done), exc),
                    changed=True,
                ) from None
            raise
        finally:
            instance.forget_service(service)
            if directory is not None:
                directory.close()


def attributes_differ(directory, unit_file: str, instance: Instance) -> Optional[tuple]:
    before = directory.attributes(unit_file)
    if before is None:
        return None
    after = {"owner": instance.uid, "group": instance.gid, "mode": "%04o" % FILE_MODE}
    return (before, after) if before != after else None


UNIT = QuadletUnit()
