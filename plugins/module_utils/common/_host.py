# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The managed host as one module run sees it: commands through one runner, files below one root, users from the
passwd database, warnings for the result, and each tool's state read once (``once``), so that several units in one
process (``immutable.hosts.host_state``) cost one ``rpm-ostree status`` or ``flatpak list`` between them.

Everything a unit needs from the host goes through here, which is also how tests give a unit their own host: another
runner, a directory as root, a passwd table.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import platform
import pwd
from typing import Any, Callable, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import Runner


class Host:
    def __init__(
        self,
        runner: Optional[Runner] = None,
        root: str = "/",
        passwd: Optional[dict] = None,
        euid: Optional[int] = None,
        environ: Optional[dict] = None,
        machine: Optional[str] = None,
        page_size: Optional[int] = None,
    ):
        self.runner = runner if runner is not None else Runner()
        self.root = str(root)
        self._passwd = passwd
        self._euid = euid
        self.environ = dict(os.environ if environ is None else environ)
        if environ is not None and self.runner.env is None:
            self.runner.env = self.environ  # the commands run in the host's environment
        self._machine = machine
        self._page_size = page_size
        self.warnings: list = []
        self.check_mode = False  # set for the run: a check reads and plans, and changes nothing
        self._cache: dict = {}

    # --- commands ------------------------------------------------------------------------------------------------

    @property
    def commands(self) -> list:
        return self.runner.commands

    def run(self, argv: list, **kwargs: Any):
        return self.runner.run(argv, **kwargs)

    def which(self, name: str) -> Optional[str]:
        return self.runner.which(name)

    # --- files ---------------------------------------------------------------------------------------------------

    def path(self, path: str) -> str:
        """An absolute host path below this host's root."""
        return os.path.join(self.root, path.lstrip("/"))

    def read_text(self, path: str) -> Optional[str]:
        """One of root's files (``/etc/rpm-ostreed.conf``), or None when it is missing or unreadable (or, in check
        mode, what an earlier unit of the run would have written: :meth:`assume_file`).  A user's files are read
        through ``common._files`` instead."""
        if ("file", path) in self._cache:
            return self._cache[("file", path)]
        try:
            with open(self.path(path), encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError):
            return None

    def read_bytes(self, path: str, limit: int = 1024 * 1024) -> Optional[bytes]:
        """The first ``limit`` bytes of one of root's files (or a kernel file under /sys), or None when unreadable."""
        try:
            with open(self.path(path), "rb") as handle:
                return handle.read(limit)
        except OSError:
            return None

    def fetch(self, location: str, limit: int) -> bytes:
        """The first ``limit`` bytes of a URL (``http://``, ``https://``) or of a file of this host (a path or
        ``file://``), read once per run; OSError when it cannot be read."""
        return self.once(("fetch", location, limit), lambda: self._fetch(location, limit))

    def _fetch(self, location: str, limit: int) -> bytes:
        if location.startswith(("http://", "https://")):
            # The standard library's client, not ansible.module_utils.urls: the same certificate checks (the default
            # context verifies), proxies from the environment and redirects, without sending and compiling urls.py
            # and its dependencies in every run of every module that imports this file. The default opener, as the
            # standard library's own shortcut builds it.
            import urllib.request

            with urllib.request.build_opener().open(location, timeout=60) as response:  # http(s) only, checked above
                return response.read(limit)
        path = location[len("file://") :] if location.startswith("file://") else location
        with open(self.path(path), "rb") as handle:
            return handle.read(limit)

    def exists(self, path: str) -> bool:
        return os.path.exists(self.path(path))

    def glob(self, pattern: str) -> list:
        """The host paths (as the host names them, below its root) matching ``pattern``, sorted; in check mode with
        the files earlier units would have written or removed (:meth:`assume_file`)."""
        found = sorted(glob.glob(self.path(pattern)))
        prefix = self.root.rstrip("/")
        if prefix:
            found = ["/" + path[len(prefix) :].lstrip("/") for path in found]
        assumed = {
            key[1]: value for key, value in self._cache.items() if key[0] == "file" and fnmatch.fnmatchcase(key[1], pattern)
        }
        if not assumed:
            return found
        return sorted(
            {path for path in found if assumed.get(path, "") is not None} | {p for p, v in assumed.items() if v is not None}
        )

    # --- users ---------------------------------------------------------------------------------------------------

    def user(self, name: str) -> Optional[Any]:
        """The passwd entry of ``name``, or None."""
        if self._passwd is not None:
            return self._passwd.get(name)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            return None

    def euid(self) -> int:
        return os.geteuid() if self._euid is None else self._euid

    def machine(self) -> str:
        """The kernel's machine name (``uname -m``)."""
        return platform.machine() if self._machine is None else self._machine

    def page_size(self) -> int:
        """The kernel's page size in bytes (``getconf PAGESIZE``)."""
        return os.sysconf("SC_PAGE_SIZE") if self._page_size is None else self._page_size

    # --- state read once per run ----------------------------------------------------------------------------------

    def once(self, key: tuple, read: Callable[[], Any]) -> Any:
        """``read()`` the first time ``key`` is asked for in this run, the same value after that."""
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    @property
    def cached(self) -> frozenset:
        """The keys read in this run so far."""
        return frozenset(self._cache)

    def forget(self, key: tuple) -> None:
        """After a change: the next ``once(key, ...)`` reads again."""
        self._cache.pop(key, None)

    def assume(self, key: tuple, value: Any) -> None:
        """In check mode, after a change that was only planned: ``once(key, ...)`` returns ``value``, what the read
        would return had the change been made, so that later units of the run plan against it (``host_state``
        installing apps from a remote it adds)."""
        self._cache[key] = value

    def assume_file(self, path: str, text: Optional[str]) -> None:
        """In check mode, after a unit planned to write ``text`` to one of root's files (None: to remove it): later
        units of the run read that (:meth:`read_text`, :meth:`glob`), so that ``host_state`` plans a signed rebase
        against the policy its trust entries would install."""
        self._cache[("file", path)] = text

    def assumed_files(self, directory: str) -> list:
        """The files below ``directory`` that earlier units of this check would have written or removed."""
        prefix = directory.rstrip("/") + "/"
        return sorted(key[1] for key in self._cache if key[0] == "file" and key[1].startswith(prefix))

    # --- reporting -----------------------------------------------------------------------------------------------

    def warn(self, message: str) -> None:
        self.warnings.append(message)
