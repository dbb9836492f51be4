# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whose containers: the system's, or a rootless user's, with that user's systemd instance reached from root without
a login session, and the user's Podman run as that user.

``systemctl --user`` for another user goes through ``runuser`` with XDG_RUNTIME_DIR and the bus address set: systemctl
then reaches the manager through ``$XDG_RUNTIME_DIR/systemd/private``, which needs neither a PAM session, nor a D-Bus
session bus, nor machined.  A user's files are opened through ``common._files``: owned by that user, never through
a link.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import os
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import split_lines

SYSTEM_QUADLET_DIR = "/etc/containers/systemd"
LINGER_DIR = "/var/lib/systemd/linger"
SHOW_PROPERTIES = ("LoadState", "ActiveState", "SubState", "NeedDaemonReload", "FragmentPath", "SourcePath")
USER_MANAGER_WAIT = 10.0


class InstanceError(HostsError):
    """The user or the user's systemd instance is not there to act on."""


def runtime_dir(uid: int) -> str:
    return "/run/user/%d" % uid


def quadlet_dir(home: str) -> str:
    return "%s/.config/containers/systemd" % home.rstrip("/")


def linger_path(name: str) -> str:
    return "%s/%s" % (LINGER_DIR, name)


def user_environment(uid: int) -> dict:
    directory = runtime_dir(uid)
    return {"XDG_RUNTIME_DIR": directory, "DBUS_SESSION_BUS_ADDRESS": "unix:path=%s/bus" % directory}


def as_user_argv(name: str, uid: int, argv: list, runtime: bool = True) -> list:
    """``argv`` run by root as user ``name``, with that user's runtime directory and bus (``runtime``: they exist;
    without them Podman keeps its runtime files in a directory of its own, and root's own, which an SSH session sets,
    must not reach it)."""
    directory = runtime_dir(uid)
    if runtime:
        env = ["XDG_RUNTIME_DIR=" + directory, "DBUS_SESSION_BUS_ADDRESS=unix:path=%s/bus" % directory]
    else:
        env = ["-u", "XDG_RUNTIME_DIR", "-u", "DBUS_SESSION_BUS_ADDRESS"]
    return ["runuser", "-u", name, "--", "env", *env, *argv]


def parse_systemctl_show(text: str) -> dict:
    """``systemctl show --property=...`` output (``Key=value`` lines) as a dict."""
    result = {}
    for line in split_lines(text):
        if "=" in line:
            key, value = line.split("=", 1)
            result[key.strip()] = value.strip()
    return result


def is_running(state: Optional[dict]) -> bool:
    return bool(state) and state.get("ActiveState") in ("active", "activating", "reloading")


class Instance:
    """The system (``user`` None) or one rootless user, on one host: where its Quadlet units live, how its systemd
    instance and its Podman are reached."""

    def __init__(self, host, user: Optional[str]):
        self.host = host
        self.user = user
        if user is None:
            self.scope, self.uid, self.gid, self.home = "system", 0, 0, "/"
            self.directory = SYSTEM_QUADLET_DIR
            return
        entry = host.user(user)
        if entry is None:
            raise InstanceError("user %r does not exist; create it first (immutable.hosts.rootless_user with create=true)" % user)
        if entry.pw_uid == 0:
            raise InstanceError("user %r is root: leave user unset to manage the system's units" % user)
        self.scope, self.uid, self.gid, self.home = "user", entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.directory = quadlet_dir(self.home)

    @property
    def runtime_dir(self) -> str:
        return runtime_dir(self.uid)

    # --- commands ------------------------------------------------------------------------------------------------

    def command(self, argv: list) -> tuple:
        """(argv, extra environment) of a command run for this instance: as is for the system or a user running the
        module itself; through runuser as the user when root acts for another user."""
        if self.scope == "system":
            return list(argv), None
        runtime = self.host.exists(self.runtime_dir)
        if self.host.euid() == self.uid:
            return list(argv), user_environment(self.uid) if runtime else None
        return as_user_argv(self.user, self.uid, argv, runtime), None

    def run(self, argv: list, **kwargs):
        argv, env = self.command(argv)
        if argv[0] == "runuser":
            # Not root's working directory, which the user cannot enter (podman's runtime refuses to start there).
            kwargs.setdefault("cwd", "/")
        return self.host.run(argv, env=env, **kwargs)

    def systemctl(self, args: list, **kwargs):
        return self.run(["systemctl"] + (["--user"] if self.scope == "user" else []) + list(args), **kwargs)

    def service_state(self, service: str) -> dict:
        """``systemctl show`` of one service, once per run."""

        def read() -> dict:
            argv = ["show", "--property=" + ",".join(SHOW_PROPERTIES), service]
            return parse_systemctl_show(self.systemctl(argv).stdout)

        return self.host.once(("systemd", self.scope, self.uid, service), read)

    def service_states(self, services: list) -> None:
        """``systemctl show`` of several services in one call, kept for :meth:`service_state` (the blocks come in the
        order the services were named, one blank line apart)."""
        wanted = [name for name in dict.fromkeys(services) if ("systemd", self.scope, self.uid, name) not in self.host.cached]
        if len(wanted) < 2 or not self.manager_running():
            return
        text = self.systemctl(["show", "--property=" + ",".join(SHOW_PROPERTIES), *wanted]).stdout
        blocks = [block for block in text.split("\n\n") if block.strip()]
        if len(blocks) != len(wanted):
            return  # not the shape expected: each service is read on its own
        for name, block in zip(wanted, blocks):
            self.host.once(("systemd", self.scope, self.uid, name), lambda block=block: parse_systemctl_show(block))

    def forget_service(self, service: str) -> None:
        self.host.forget(("systemd", self.scope, self.uid, service))

    def ensure_user_namespace(self) -> None:
        """Rootless Podman's user namespace, and the pause process that keeps it, made once per run before a service
        of the user starts: the first Podman process of a user creates them and moves the pause process into a scope
        of its own; when that first process is a service's ``podman run``, its conmon can end up outside the service
        (systemd then fails the service with result 'protocol').  Made here, from outside any service, no service
        is the first."""
        if self.scope != "user" or not self.host.which("podman"):
            return
        self.host.once(("podman", "userns", self.uid), lambda: self.run(["podman", "unshare", "true"], check=False))

    # --- the user's manager -----------------------------------------------------------------------------------

    def manager_running(self) -> bool:
        return self.scope == "system" or self.host.exists(os.path.join(self.runtime_dir, "systemd", "private"))

    def lingering(self) -> bool:
        return self.host.exists(linger_path(self.user))

    def ensure_manager(self, check_mode: bool) -> bool:
        """Whether the instance's manager runs (to read and change its services); started when linger says it should
        run.  In check mode a stopped manager is reported, not started."""
        if self.manager_running():
            return True
        if check_mode:
            self.host.warn("the systemd instance of %s is not running; the plan assumes the service is stopped" % self.user)
            return False
        if self.lingering() and self.host.euid() == 0:
            self.host.run(["systemctl", "start", "user@%d.service" % self.uid])
            runner = self.host.runner
            deadline = runner.clock() + USER_MANAGER_WAIT
            while not self.manager_running() and runner.clock() < deadline:
                runner.sleep(0.2)
            if self.manager_running():
                return True
        raise InstanceError(
            "the systemd instance of user %s is not running (no %s/systemd/private); turn linger on "
            "(immutable.hosts.rootless_user, or loginctl enable-linger %s) so it runs without a login session"
            % (self.user, self.runtime_dir, self.user)
        )

    # --- files ---------------------------------------------------------------------------------------------------

    def open_directory(self, create: bool = False):
        """The Quadlet directory, opened so that root never follows a link the user planted (None when missing and
        ``create`` is false).  ~/.config is created 0700, the rest 0755, all owned by the user."""
        path = self.host.path(self.directory)
        if self.scope == "system":
            return safe_files.open_directory(path, create={} if create else None)
        home = self.host.path(self.home)
        modes = {os.path.join(home, ".config"): 0o700}
        return safe_files.open_directory(path, self.uid, self.gid, home=home, create=modes if create else None)
