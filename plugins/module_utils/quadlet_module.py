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
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import quadlet, rootless
from ansible_collections.immutable.hosts.plugins.module_utils.runner import Runner, RunnerError

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


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


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


def validate_with_generator(runner, generator, target, unit_file, service, text):
    """Run the generator in dry-run mode on a copy of the unit directory holding the candidate; None when accepted,
    else the generator's message.  Sibling units are copied so references such as Network=app.network resolve."""
    workdir = tempfile.mkdtemp(prefix="quadlet-validate-")
    try:
        if os.path.isdir(target.directory):
            for entry in sorted(os.listdir(target.directory)):
                source = os.path.join(target.directory, entry)
                if entry != unit_file and entry.rsplit(".", 1)[-1] in quadlet.KINDS and os.path.isfile(source):
                    shutil.copyfile(source, os.path.join(workdir, entry))
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
    warnings = [warning for warning in parsed["warnings"] if unit_file in warning]
    return quadlet.generator_verdict(parsed, unit_file, service), warnings


def attributes_differ(path, target):
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    before = {"owner": info.st_uid, "group": info.st_gid, "mode": "%04o" % stat.S_IMODE(info.st_mode)}
    after = {"owner": target.uid, "group": target.gid, "mode": "%04o" % FILE_MODE}
    return (before, after) if before != after else None


def ensure_directory(target):
    """Create the unit directory (and, for a user, ~/.config and ~/.config/containers) owned by the unit's owner."""
    missing = []
    directory = target.directory
    stop = target.home if target.scope == "user" else "/"
    while not os.path.isdir(directory) and directory not in (stop, "/"):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700 if directory.endswith("/.config") else 0o755)
        if target.scope == "user":
            os.chown(directory, target.uid, target.gid)


def write_unit(module, target, path, text):
    ensure_directory(target)
    fd, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    module.atomic_move(temp, path, keep_dest_attrs=False)
    set_attributes(path, target)


def set_attributes(path, target):
    os.chown(path, target.uid, target.gid)
    os.chmod(path, FILE_MODE)


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


def apply(module, runner, target, plan, path, desired, service, state):
    done = []
    try:
        for action in plan["actions"]:
            if action == "write":
                write_unit(module, target, path, desired)
            elif action == "attributes":
                set_attributes(path, target)
            elif action == "remove":
                os.unlink(path)
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
    except (OSError, RunnerError) as exc:
        if done:
            raise PartlyApplied("%s failed after %s: %s" % (action, ", ".join(done), exc)) from None
        raise


def converge(module, runner):
    params = module.params
    kind = params["kind"]
    name = quadlet.validate_name(params["name"], kind)
    target = Target(params["user"])
    unit_file = quadlet.file_name(name, kind)
    path = os.path.join(target.directory, unit_file)
    present = params["state"] == "present"
    desired = desired_text(params, target) if present else None
    started = params["started"]
    if started is None and present:
        started = kind != "build"
    current = read_text(path)
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
            message, warnings = validate_with_generator(runner, generator, target, unit_file, service, desired)
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

    attributes = attributes_differ(path, target) if present and current is not None else None
    state = None
    if (current is not None or present) and ensure_manager(module, runner, target):
        state = read_service_state(runner, target, service)
    plan = quadlet.plan_quadlet(current, desired, state, started, params["restart_on_change"], bool(attributes), path)

    if not module.check_mode:
        apply(module, runner, target, plan, path, desired, service, state)

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
    except (Failure, quadlet.InvalidQuadlet, rootless.InvalidRootless) as exc:
        module.fail_json(msg=str(exc), commands=runner.commands)
    except (OSError, RunnerError) as exc:
        module.fail_json(msg="cannot manage the Quadlet unit %s: %s" % (module.params["name"], exc), commands=runner.commands)
    module.exit_json(commands=runner.commands, **result)


def main():
    execute(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **MODULE_OPTIONS))
