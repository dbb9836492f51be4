# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every flatpak module does around its own plan: pick the installation (system, user, another user's, or a
custom one), run flatpak there through the one runner (as that user, with that user's environment), find the
installation's directory for the files read directly (override keyfiles, GPG keyrings, pins), and report.

Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

import glob
import os
import pwd
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak
from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.common._files import UnsafePath
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import Runner, RunnerError

COMMON_ARGUMENT_SPEC = dict(
    scope=dict(type="str", choices=["system", "user"]),
    user=dict(type="str"),
    installation=dict(type="str"),
)

# Variables of the module's own user that must not leak into another user's flatpak.
PER_USER_VARIABLES = (
    "FLATPAK_USER_DIR",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "HOME",
    "USER",
    "LOGNAME",
    "MAIL",
)


def make_runner() -> Runner:
    return Runner()


def geteuid() -> int:
    return os.geteuid()


def user_environment(entry, runtime_dir_exists, bus_exists) -> dict:
    """The environment another user's flatpak runs with: HOME, USER and LOGNAME from the passwd entry;
    XDG_RUNTIME_DIR=/run/user/UID and its session bus, when they exist (a lingering or logged-in user)."""
    env = {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
    runtime_dir = "/run/user/%d" % entry.pw_uid
    if runtime_dir_exists(runtime_dir):
        env["XDG_RUNTIME_DIR"] = runtime_dir
        if bus_exists(runtime_dir + "/bus"):
            env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=%s/bus" % runtime_dir
    return env


class FlatpakHostError(Exception):
    pass


def check_installation(params) -> tuple:
    """Which installation the call manages, checked before anything runs:
    (user, installation, scope, passwd entry of the user or None, whether flatpak runs as that user)."""
    user = params.get("user")
    installation = params.get("installation")
    scope = params.get("scope")
    if user is not None:
        if scope == "system":
            raise FlatpakHostError("user=%s manages that user's per-user installation; it needs scope=user" % user)
        if installation:
            raise FlatpakHostError("installation and user exclude each other: a custom installation is system-wide")
        scope = "user"
    if installation is not None:
        if scope == "user":
            raise FlatpakHostError("installation=%s is a system-wide installation; it needs scope=system" % installation)
        if not flatpak._REMOTE_NAME_RE.match(installation):
            raise FlatpakHostError("installation %r is not a valid installation name" % installation)
    passwd, as_user = None, False
    if user is not None:
        if not user or not isinstance(user, str) or user.startswith("-") or "/" in user:
            raise FlatpakHostError("user %r is not a valid user name" % (user,))
        try:
            passwd = pwd.getpwnam(user)
        except KeyError:
            raise FlatpakHostError("user %r does not exist on this host" % user) from None
        if passwd.pw_uid != geteuid():
            if geteuid() != 0:
                raise FlatpakHostError(
                    "managing the installation of user %s needs root (become: true) to run flatpak as that user" % user
                )
            as_user = True
    return user, installation, scope or "system", passwd, as_user


class FlatpakHost:
    """One module run against one flatpak installation."""

    def __init__(self, module, runner: Optional[Runner] = None):
        self.module = module
        self.runner = runner or make_runner()
        self.user, self.installation, self.scope, self.passwd, self.as_user = check_installation(module.params)
        self.scope_args = flatpak.scope_args(self.scope, self.installation)
        self.env = user_environment(self.passwd, os.path.isdir, os.path.exists) if self.user is not None else None

    # --- running -------------------------------------------------------------------------------------------------

    def argv(self, args: list) -> list:
        """``flatpak <scope> args``, or ``runuser -u USER -- /path/to/flatpak ...`` for another user."""
        args = list(args)
        if self.as_user:
            return ["runuser", "-u", self.user, "--", self.runner.binary("flatpak"), *args]
        return ["flatpak", *args]

    def run(self, args: list, check: bool = True):
        if self.env is not None:
            base = {k: v for k, v in os.environ.items() if k not in PER_USER_VARIABLES}
            self.runner.env = base
        return self.runner.run(self.argv(args), check=check, env=self.env)

    def require_flatpak(self) -> None:
        if not self.runner.which("flatpak"):
            raise FlatpakHostError("flatpak is not installed on this host")
        if self.as_user and not self.runner.which("runuser"):
            raise FlatpakHostError("runuser (util-linux) is needed to run flatpak as user %s" % self.user)

    # --- listing -------------------------------------------------------------------------------------------------

    def list_refs(self) -> list:
        return flatpak.parse_list(self.run(["list", *self.scope_args, flatpak.columns_arg(flatpak.LIST_COLUMNS)]).stdout)

    def remotes(self) -> dict:
        argv = ["remotes", *self.scope_args, "--show-disabled", flatpak.columns_arg(flatpak.REMOTE_COLUMNS)]
        return flatpak.parse_remotes(self.run(argv).stdout)

    # --- files of the installation ---------------------------------------------------------------------------

    def directory(self) -> str:
        custom = None
        if self.installation:
            config_dir = os.environ.get("FLATPAK_CONFIG_DIR") or flatpak.DEFAULT_CONFIG_DIR
            texts = []
            for path in sorted(glob.glob(os.path.join(config_dir, "installations.d", "*.conf"))):
                with open(path, encoding="utf-8") as handle:
                    texts.append(handle.read())
            custom = flatpak.custom_installations(texts)
        home = self.passwd.pw_dir if self.passwd is not None and self.as_user else None
        return flatpak.installation_dir(self.scope, self.installation, dict(os.environ), home=home, custom=custom)

    def owner(self) -> Optional[tuple]:
        """(uid, gid) files written for another user get, or None."""
        if self.as_user:
            return self.passwd.pw_uid, self.passwd.pw_gid
        return None

    def open_directory(self, relative: str, create: bool = False):
        """A directory of the installation (``overrides``, ``repo``), opened so that root never follows a link
        another user planted: another user's installation below that user's home, checked component by component
        and owned by that user; the system's, root's.  None when it does not exist and ``create`` is false."""
        path = os.path.join(self.directory(), relative)
        owner = self.owner()
        if owner is None:
            return safe_files.open_directory(path, create={} if create else None)
        home = self.passwd.pw_dir
        modes = {os.path.join(home, ".local"): 0o700} if create else None
        return safe_files.open_directory(path, owner[0], owner[1], home=home, create=modes)

    def read_file(self, relative: str) -> Optional[bytes]:
        """A file of the installation (``repo/config``), read through :meth:`open_directory`; None when missing."""
        directory = self.open_directory(os.path.dirname(relative))
        if directory is None:
            return None
        with directory:
            return directory.read_bytes(os.path.basename(relative))

    # --- reporting -------------------------------------------------------------------------------------------

    def exit(self, changed: bool, diff: dict, **extra) -> None:
        self.module.exit_json(changed=changed, diff=diff, commands=self.runner.commands, **extra)

    def fail(self, msg: str, **extra) -> None:
        self.module.fail_json(msg=msg, commands=self.runner.commands, **extra)


def run_module(module, body) -> None:
    """Run ``body(host)`` and turn every expected error into ``fail_json`` with the commands that ran."""
    try:
        host = FlatpakHost(module)
    except FlatpakHostError as exc:
        module.fail_json(msg=str(exc), commands=[])
    try:
        body(host)
    except (FlatpakHostError, RunnerError, ValueError, OSError, UnsafePath) as exc:
        host.fail(str(exc))
