# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every Flatpak unit does around its own plan: pick the installation (system, user, another user's, or a custom
one), run flatpak there (as that user, with that user's environment), read its ``--columns=`` listings, find the
installation's directory for the files read directly (override keyfiles, GPG keyrings, pins) and open it so that root
never follows a link a user planted.

Listings are read once per run through the host reader, so the apps, remotes and overrides of one installation in one
``immutable.hosts.host_state`` run cost one ``flatpak list`` and one ``flatpak remotes`` between them.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import split_lines
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._names import FlatpakError, is_valid_remote_name

# The options every Flatpak unit shares (doc fragment immutable.hosts.flatpak).
COMMON_ARGUMENT_SPEC = dict(
    scope=dict(type="str", choices=["system", "user"]),
    user=dict(type="str"),
    installation=dict(type="str"),
)
DEFAULT_SYSTEM_DIR = "/var/lib/flatpak"
DEFAULT_CONFIG_DIR = "/etc/flatpak"

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


# --- listings ---------------------------------------------------------------------------------------------------------


def columns_arg(columns: tuple) -> str:
    """``--columns=`` with ``:f`` on each, which keeps every value whole; rows are tab-separated off a terminal."""
    return "--columns=" + ",".join(column + ":f" for column in columns)


def rows(text: str, columns: tuple) -> list:
    """The rows of a ``--columns=`` listing as {column: value}."""
    found = []
    for line in split_lines(text):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) > len(columns):
            raise FlatpakError("unexpected flatpak output (%d columns, asked for %d): %r" % (len(fields), len(columns), line))
        fields += [""] * (len(columns) - len(fields))
        found.append(dict(zip(columns, fields)))
    return found


def options(value: str) -> list:
    """The ``options`` column: ``current,runtime`` -> ["current", "runtime"]."""
    return [option for option in value.split(",") if option]


def dash(value: str) -> Optional[str]:
    """A column value, None where flatpak prints nothing or ``-``."""
    return None if value in ("", "-") else value


# --- where an installation lives -------------------------------------------------------------------------------------


def custom_installations(config_texts: list) -> dict:
    """``installations.d/*.conf`` contents into {name: path}."""
    found = {}
    for text in config_texts:
        try:
            groups = keyfile.parse(text)
        except keyfile.KeyfileError as exc:
            raise FlatpakError("an installations.d file is not a keyfile: %s" % exc) from None
        for group, values in groups.items():
            match = re.match(r'^Installation "(?P<name>[^"]+)"$', group)
            if match and values.get("Path"):
                found[match.group("name")] = values["Path"]
    return found


def installation_dir(
    scope: str, installation: Optional[str], environ: dict, home: Optional[str] = None, custom: Optional[dict] = None
) -> str:
    """Where the installation lives: FLATPAK_SYSTEM_DIR or /var/lib/flatpak; FLATPAK_USER_DIR, XDG_DATA_HOME/flatpak
    or HOME/.local/share/flatpak (``home`` given: another user's, whose default applies); a custom installation's Path."""
    if installation:
        custom = custom or {}
        if installation not in custom:
            raise FlatpakError("no flatpak installation named %r (none in installations.d)" % installation)
        return custom[installation]
    if scope == "system":
        return environ.get("FLATPAK_SYSTEM_DIR") or DEFAULT_SYSTEM_DIR
    if home is not None:
        return os.path.join(home, ".local/share/flatpak")
    if environ.get("FLATPAK_USER_DIR"):
        return environ["FLATPAK_USER_DIR"]
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(environ.get("HOME") or "/", ".local/share")
    return os.path.join(data_home, "flatpak")


def scope_args(scope: str, installation: Optional[str]) -> list:
    if installation:
        return ["--installation=" + installation]
    return ["--user"] if scope == "user" else ["--system"]


def user_environment(entry: Any, exists: Callable[[str], bool]) -> dict:
    """The environment another user's flatpak runs with: HOME, USER and LOGNAME from the passwd entry;
    XDG_RUNTIME_DIR=/run/user/UID and its session bus, when they exist (a lingering or logged-in user)."""
    env = {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
    runtime_dir = "/run/user/%d" % entry.pw_uid
    if exists(runtime_dir):
        env["XDG_RUNTIME_DIR"] = runtime_dir
        if exists(runtime_dir + "/bus"):
            env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=%s/bus" % runtime_dir
    return env


@dataclass(frozen=True)
class Place:
    """Which installation a call manages: ``scope`` system or user, a custom ``installation``, or ``user``'s own
    (``as_user`` when flatpak must run as that user)."""

    scope: str
    installation: Optional[str] = None
    user: Optional[str] = None
    as_user: bool = False

    @property
    def key(self) -> tuple:
        return (self.scope, self.installation, self.user)


def choose(params: dict, host) -> Place:
    """The installation of a call, checked before anything runs."""
    user, installation, scope = params.get("user"), params.get("installation"), params.get("scope")
    if user is not None:
        if scope == "system":
            raise FlatpakError("user=%s manages that user's per-user installation; it needs scope=user" % user)
        if installation:
            raise FlatpakError("installation and user exclude each other: a custom installation is system-wide")
        scope = "user"
    if installation is not None:
        if scope == "user":
            raise FlatpakError("installation=%s is a system-wide installation; it needs scope=system" % installation)
        if not is_valid_remote_name(installation):
            raise FlatpakError("installation %r is not a valid installation name" % installation)
    as_user = False
    if user is not None:
        if not user or not isinstance(user, str) or user.startswith("-") or "/" in user:
            raise FlatpakError("user %r is not a valid user name" % (user,))
        entry = host.user(user)
        if entry is None:
            raise FlatpakError("user %r does not exist on this host" % user)
        if entry.pw_uid != host.euid():
            if host.euid() != 0:
                raise FlatpakError(
                    "managing the installation of user %s needs root (become: true) to run flatpak as that user" % user
                )
            as_user = True
    return Place(scope=scope or "system", installation=installation, user=user, as_user=as_user)


class Installation:
    """One Flatpak installation of one host, as one run sees it."""

    def __init__(self, host, place: Place):
        self.host = host
        self.place = place
        self.passwd = host.user(place.user) if place.user is not None else None
        self.scope_args = scope_args(place.scope, place.installation)

    # --- running -------------------------------------------------------------------------------------------------

    def require_flatpak(self) -> None:
        if not self.host.which("flatpak"):
            raise FlatpakError("flatpak is not installed on this host")
        if self.place.as_user and not self.host.which("runuser"):
            raise FlatpakError("runuser (util-linux) is needed to run flatpak as user %s" % self.place.user)

    def run(self, args: list, check: bool = True):
        """``flatpak ARGS``, or ``runuser -u USER -- /path/to/flatpak ARGS`` with that user's environment."""
        if self.place.user is None:
            return self.host.run(["flatpak", *args], check=check)
        env = user_environment(self.passwd, self.host.exists)
        argv = ["flatpak", *args]
        if self.place.as_user:
            argv = ["runuser", "-u", self.place.user, "--", self.host.runner.binary("flatpak"), *args]
        cwd = "/" if self.place.as_user else None  # not root's working directory, which the user cannot enter
        return self.host.run(argv, check=check, env=env, unset=PER_USER_VARIABLES, cwd=cwd)

    def once(self, what: str, read: Callable[[], Any]) -> Any:
        """``read()`` once per run for this installation (a listing), shared by every unit of the run."""
        return self.host.once(("flatpak", what) + self.place.key, read)

    def forget(self, what: str) -> None:
        self.host.forget(("flatpak", what) + self.place.key)

    def assume(self, what: str, value: Any) -> None:
        self.host.assume(("flatpak", what) + self.place.key, value)

    # --- files of the installation ---------------------------------------------------------------------------

    def directory(self) -> str:
        """The installation's directory as flatpak sees it on the host."""
        custom = None
        if self.place.installation:
            config_dir = self.host.environ.get("FLATPAK_CONFIG_DIR") or DEFAULT_CONFIG_DIR
            pattern = os.path.join(config_dir, "installations.d", "*.conf")
            custom = custom_installations([self.host.read_text(path) or "" for path in self.host.glob(pattern)])
        home = self.passwd.pw_dir if self.place.as_user else None
        return installation_dir(self.place.scope, self.place.installation, self.host.environ, home=home, custom=custom)

    def owner(self) -> Optional[tuple]:
        """(uid, gid) files written for another user get, or None."""
        if self.place.as_user:
            return self.passwd.pw_uid, self.passwd.pw_gid
        return None

    def open_directory(self, relative: str, create: bool = False):
        """A directory of the installation (``overrides``, ``repo``), opened so that root never follows a link
        another user planted: another user's installation below that user's home, checked component by component
        and owned by that user; the system's, root's.  None when it does not exist and ``create`` is false."""
        path = self.host.path(os.path.join(self.directory(), relative))
        owner = self.owner()
        if owner is None:
            return safe_files.open_directory(path, create={} if create else None)
        home = self.host.path(self.passwd.pw_dir)
        modes = {os.path.join(home, ".local"): 0o700} if create else None
        return safe_files.open_directory(path, owner[0], owner[1], home=home, create=modes)

    def read_file(self, relative: str) -> Optional[bytes]:
        """A file of the installation (``repo/config``), read through :meth:`open_directory`; None when missing."""
        directory = self.open_directory(os.path.dirname(relative))
        if directory is None:
            return None
        with directory:
            return directory.read_bytes(os.path.basename(relative))
