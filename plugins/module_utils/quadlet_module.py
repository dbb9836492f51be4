# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The body of the module immutable.hosts.quadlet: its argument spec and what it does with a module object.

plugins/modules/quadlet.py holds the documentation and calls main(); immutable.hosts.batch runs execute() in its own
process for several calls at once.  Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import quadlet, rootless
from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.common._files import UnsafePath
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import Runner, RunnerError

SYSTEM_QUADLET_DIR = "/etc/containers/systemd"
GENERATOR_PATHS = (
    "/usr/libexec/podman/quadlet",
    "/usr/lib/systemd/system-generators/podman-system-generator",
    "/usr/lib/systemd/user-generators/podman-user-generator",
    "/usr/local/libexec/podman/quadlet",
    "/usr/lib/podman/quadlet",
)
FILE_MODE = 0o644
USER_MANAGER_WAIT = 10.0
SECTION_OPTIONS = quadlet.KINDS + ("quadlet", "unit", "service", "install")

# Host lookups, replaced in tests.
RUNTIME_ROOT = "/run/user"
LINGER_DIR = rootless.LINGER_DIR
lookup_user = pwd.getpwnam
geteuid = os.geteuid


def make_runner():
    return Runner()


class Failure(Exception):
    pass


class Target:
    """Where the unit lives and how to reach its systemd instance."""

    def __init__(self, user):
        self.user = user
        if user is None:
            self.scope, self.uid, self.gid, self.home = "system", 0, 0, "/"
            self.directory = SYSTEM_QUADLET_DIR
            return
        try:
            entry = lookup_user(user)
        except KeyError:
            raise Failure(
                "user %r does not exist; create it first (immutable.hosts.rootless_user with create=true)" % user
            ) from None
        if entry.pw_uid == 0:
            raise Failure("user %r is root: leave user unset to manage a system unit" % user)
        self.scope, self.uid, self.gid, self.home = "user", entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.directory = rootless.quadlet_dir(self.home)

    @property
    def runtime_dir(self):
        return "%s/%d" % (RUNTIME_ROOT.rstrip("/"), self.uid)

    def systemctl(self, args):
        if self.scope == "system":
            return ["systemctl"] + list(args), None
        same = geteuid() == self.uid
        return rootless.user_systemctl_argv(self.user, self.uid, args, same), (
            rootless.user_environment(self.uid) if same else None
        )

    def manager_running(self):
        return self.scope == "system" or os.path.exists(os.path.join(self.runtime_dir, "systemd", "private"))

    def lingering(self):
        return os.path.exists(rootless.linger_path(self.user, LINGER_DIR))

    def open_directory(self, create=False):
        """The unit directory, opened so that root never follows a link the user planted (None when missing and
        ``create`` is false).  ~/.config is created 0700, the rest 0755, all owned by the user."""
        if self.scope == "system":
            return safe_files.open_directory(self.directory, create={} if create else None)
        modes = {os.path.join(self.home, ".config"): 0o700}
        return safe_files.open_directory(self.directory, self.uid, self.gid, home=self.home, create=modes if create else None)


def desired_text(params, target):
    kind = params["kind"]
    if params["content"] is not None:
        given = [option for option in SECTION_OPTIONS if params[option] is not None]
        if given:
            raise quadlet.InvalidQuadlet("content excludes the section options (%s)" % ", ".join(given))
        if params["enabled"] is not None:
            raise quadlet.InvalidQuadlet("enabled applies to structured options; with content, write [Install] yourself")
        quadlet.check_content(kind, params["content"])
        text = params["content"]
        return text if text.endswith("\n") else text + "\n"
    options = {option: params[option] for option in SECTION_OPTIONS}
    return quadlet.render_unit(kind, options, target.scope, params["enabled"])


def sections_of(text):
    """The unit's sections, or none when an unmanaged file on disk does not parse (it is about to go anyway)."""
    try:
        return quadlet.parse_unit(text or "")
    except quadlet.InvalidQuadlet:
        return {}


def find_generator(runner):
    for path in GENERATOR_PATHS:
        if runner.which(path):
            return path
    return None


# The generator's words for a unit that refers to another Quadlet unit that does not exist (yet).
MISSING_SIBLING_RE = re.compile(r"(?:quadlet \w+ unit \S+ does not exist|requested Quadlet unit \S+ was not found)")


def validate_with_generator(runner, generator, directory, target, unit_file, service, text):
    """Run the generator in dry-run mode on a private copy of the unit directory holding the candidate; None when
    accepted, else the generator's message.  Sibling units are copied so references such as Network=app.network
    resolve; they are read through the directory's descriptor, and a sibling that is a link or not the owner's is
    left out (with a warning) rather than read as root."""
    workdir = tempfile.mkdtemp(prefix="quadlet-validate-")
    skipped = []
    try:
        for entry in directory.names() if directory is not None else []:
            if entry == unit_file or entry.rsplit(".", 1)[-1] not in quadlet.KINDS or entry.startswith("."):
                continue
            try:
                sibling = directory.read_text(entry)
            except UnsafePath as exc:
                skipped.append(str(exc))
                continue
            if sibling is not None:
                with open(os.path.join(workdir, entry), "w", encoding="utf-8") as handle:
                    handle.write(sibling)
        with open(os.path.join(workdir, unit_file), "w", encoding="utf-8") as handle:
            handle.write(text)
        result = runner.run(
            quadlet.generator_argv(generator, target.scope == "user"),
            check=False,
            env={"QUADLET_UNIT_DIRS": workdir},
            cwd=workdir,
            timeout=120,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    parsed = quadlet.parse_dryrun(result.stdout, result.stderr, result.rc)
    warnings = ["sibling unit not used for validation: %s" % reason for reason in skipped]
    warnings += [warning for warning in parsed["warnings"] if unit_file in warning]
    return quadlet.generator_verdict(parsed, unit_file, service), warnings


def attributes_differ(directory, unit_file, target):
    before = directory.attributes(unit_file) if directory is not None else None
    if before is None:
        return None
    after = {"owner": target.uid, "group": target.gid, "mode": "%04o" % FILE_MODE}
    return (before, after) if before != after else None


def ensure_manager(module, runner, target):
    """The user's systemd instance must be up for reload/start; start it when linger says it should run."""
    if target.manager_running():
        return True
    if module.check_mode:
        module.warn("the systemd instance of %s is not running; the plan assumes the service is stopped" % target.user)
        return False
    if target.lingering() and geteuid() == 0:
        runner.run(["systemctl", "start", "user@%d.service" % target.uid])
        deadline = runner.clock() + USER_MANAGER_WAIT
        while not target.manager_running() and runner.clock() < deadline:
            runner.sleep(0.2)
        if target.manager_running():
            return True
    raise Failure(
        "the systemd instance of user %s is not running (no %s/systemd/private); turn linger on "
        "(immutable.hosts.rootless_user, or loginctl enable-linger %s) so it runs without a login session"
        % (target.user, target.runtime_dir, target.user)
    )


def read_service_state(runner, target, service):
    argv, env = target.systemctl(["show", "--property=" + ",".join(quadlet.SHOW_PROPERTIES), service])
    result = runner.run(argv, env=env)
    return quadlet.parse_systemctl_show(result.stdout)


class PartlyApplied(Failure):
    """A failure after the host was already changed (the unit written, the manager reloaded)."""


def apply(runner, target, plan, unit_file, desired, service, state):
    done = []
    directory = None
    try:
        for action in plan["actions"]:
            if action in ("write", "attributes", "remove") and directory is None:
                directory = target.open_directory(create=action == "write")
            if action == "write":
                directory.write(unit_file, desired, FILE_MODE)
            elif action == "attributes":
                directory.set_attributes(unit_file, FILE_MODE)
            elif action == "remove":
                if directory is not None:
                    directory.remove(unit_file)
            elif action == "daemon-reload":
                argv, env = target.systemctl(["daemon-reload"])
                runner.run(argv, env=env)
            else:
                if action in ("start", "restart") and (state or {}).get("ActiveState") == "failed":
                    # A unit that hit its start limit refuses to start until its failed state is reset.
                    argv, env = target.systemctl(["reset-failed", service])
                    runner.run(argv, env=env, check=False)
                argv, env = target.systemctl([action, service])
                runner.run(argv, env=env)
            done.append(action)
    except (OSError, RunnerError, UnsafePath) as exc:
        if done:
            raise PartlyApplied("%s failed after %s: %s" % (action, ", ".join(done), exc)) from None
        raise
    finally:
        if directory is not None:
            directory.close()


def validate(params):
    """Everything that can be checked before the host is touched: the name, the user, the unit's text.
    Returns (name, target, desired text or None)."""
    name = quadlet.validate_name(params["name"], params["kind"])
    target = Target(params["user"])
    desired = desired_text(params, target) if params["state"] == "present" else None
    return name, target, desired


def shadowed_unit(state, path):
    """The unit file that already provides the generated service's name, when it is not this Quadlet unit."""
    state = state or {}
    if state.get("LoadState") == "masked":
        return "a mask (%s)" % (state.get("FragmentPath") or "/dev/null")
    if state.get("LoadState") == "loaded" and state.get("FragmentPath") and state.get("SourcePath") != path:
        return state.get("SourcePath") or state["FragmentPath"]
    return None


def converge(module, runner):
    params = module.params
    kind = params["kind"]
    name, target, desired = validate(params)
    unit_file = quadlet.file_name(name, kind)
    path = os.path.join(target.directory, unit_file)
    present = params["state"] == "present"
    started = params["started"]
    if started is None and present:
        started = kind != "build"
    directory = target.open_directory(create=False)
    try:
        current = directory.read_text(unit_file) if directory is not None else None
        service = quadlet.service_name(name, kind, sections_of(desired if present else current))
        result = {
            "name": name,
            "unit": unit_file,
            "path": path,
            "service": service,
            "scope": target.scope,
            "user": target.user,
            "quadlet_dir": target.directory,
            "validated": False,
            "generator": None,
        }

        # The generator sees the candidate before anything on the host is touched, the user's manager included.
        if present and current != desired and params["validate"]:
            generator = find_generator(runner)
            if generator:
                message, warnings = validate_with_generator(runner, generator, directory, target, unit_file, service, desired)
                result.update(validated=True, generator=generator)
                if message and module.check_mode and MISSING_SIBLING_RE.search(message):
                    # In check mode earlier tasks wrote nothing, so a unit this one refers to (a pod, a network) may be
                    # missing only because this run did not create it yet: say so rather than fail the prediction.
                    module.warn("cannot fully validate %s in check mode: %s" % (unit_file, message))
                    result["validated"] = False
                elif message:
                    raise Failure("the Quadlet generator %s rejected %s: %s" % (generator, unit_file, message))
                for warning in warnings:
                    module.warn(warning)

        attributes = attributes_differ(directory, unit_file, target) if present and current is not None else None
    finally:
        if directory is not None:
            directory.close()
    state = None
    if (current is not None or present) and ensure_manager(module, runner, target):
        state = read_service_state(runner, target, service)
    other = shadowed_unit(state, path) if present else None
    if other:
        raise Failure(
            "%s would generate %s, which %s already provides for the %s instance; a Quadlet unit never shadows "
            "another unit: choose another name, or set ServiceName= (service_name) in the %s options"
            % (unit_file, service, other, target.scope, kind)
        )
    plan = quadlet.plan_quadlet(current, desired, state, started, params["restart_on_change"], bool(attributes), path)

    if not module.check_mode:
        apply(runner, target, plan, unit_file, desired, service, state)

    diff = [plan["diff"]]
    if attributes and "write" not in plan["actions"]:
        diff.append({"before": attributes[0], "after": attributes[1]})
    active = quadlet.is_running(state)
    if "stop" in plan["actions"]:
        active = False
    elif {"start", "restart"} & set(plan["actions"]):
        active = True
    result.update(changed=plan["changed"], actions=plan["actions"], active=active, diff=diff)
    return result


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    kind=dict(type="str", choices=list(quadlet.KINDS), default="container"),
    user=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    enabled=dict(type="bool"),
    started=dict(type="bool"),
    restart_on_change=dict(type="bool", default=True),
    validate=dict(type="bool", default=True),
    content=dict(type="str"),
    container=dict(type="dict"),
    pod=dict(type="dict"),
    volume=dict(type="dict"),
    network=dict(type="dict"),
    kube=dict(type="dict"),
    image=dict(type="dict"),
    build=dict(type="dict"),
    quadlet=dict(type="dict"),
    unit=dict(type="dict"),
    service=dict(type="dict"),
    install=dict(type="dict"),
)
MODULE_OPTIONS = {}


def validate_call(params):
    """Every check the call makes before touching the host (batch runs this for all calls first)."""
    validate(params)


def execute(module):
    runner = make_runner()
    try:
        result = converge(module, runner)
    except PartlyApplied as exc:
        module.fail_json(
            msg="the Quadlet unit %s changed the host, then: %s" % (module.params["name"], exc),
            changed=True,
            commands=runner.commands,
        )
    except (Failure, quadlet.InvalidQuadlet, rootless.InvalidRootless, UnsafePath) as exc:
        module.fail_json(msg=str(exc), commands=runner.commands)
    except (OSError, RunnerError) as exc:
        module.fail_json(msg="cannot manage the Quadlet unit %s: %s" % (module.params["name"], exc), commands=runner.commands)
    module.exit_json(commands=runner.commands, **result)


def main():
    execute(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **MODULE_OPTIONS))
