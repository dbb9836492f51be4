# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way our modules run commands.

Argument lists only (never a shell string), the C locale, binaries looked up on a fixed search path, a timeout
per call, and patience with a busy rpm-ostree daemon: "Transaction in progress" and "System transaction in
progress" are retried with backoff until a caller-given deadline, after which the error names the busy
transaction.

Standard library only, Python 3.9+.  The clock, the sleep and the process spawner are injectable for tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError

SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
DEFAULT_TIMEOUT = 900.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 15.0

_TXN_BUSY_RE = re.compile(r"Transaction in progress: (?P<title>[^\n]*)")
_SYSROOT_BUSY_RE = re.compile(r"System transaction in progress")
_UNSAFE_ARG_RE = re.compile(r"\x00")


class RunnerError(HostsError):
    """Base class of runner errors; ``str()`` is a message for ``fail_json``."""


class BinaryNotFound(RunnerError):
    def __init__(self, name: str, paths: Sequence[str]):
        self.name = name
        super().__init__("required binary %r not found in %s" % (name, ":".join(paths)))


class CommandFailed(RunnerError):
    def __init__(self, result: Result):
        self.result = result
        detail = (result.stderr or result.stdout).strip() or "no output"
        super().__init__("%s failed with exit code %d: %s" % (" ".join(result.argv), result.rc, detail))


class CommandTimeout(RunnerError):
    def __init__(self, argv: Sequence[str], timeout: float):
        self.argv = list(argv)
        super().__init__("%s did not finish within %g seconds" % (" ".join(argv), timeout))


class BusyTimeout(RunnerError):
    """rpm-ostree stayed busy past the caller's deadline."""

    def __init__(self, title: str, waited: float):
        self.title = title
        self.waited = waited
        super().__init__(
            "rpm-ostree is busy with another transaction (%s) and stayed busy for %.0f seconds; "
            "wait for it to finish, cancel it with 'rpm-ostree cancel', or raise wait_timeout" % (title, waited)
        )


@dataclass(frozen=True)
class Result:
    argv: list
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def busy_title(stderr: str) -> Optional[str]:
    """The title of the transaction that made rpm-ostree refuse, or None when it did not refuse for being busy.

    Handles the plain message, the ``Updating deployment:`` prefix and the leaked GDBus error prefix.
    """
    if not stderr:
        return None
    match = _TXN_BUSY_RE.search(stderr)
    if match:
        return match.group("title").strip() or "(untitled transaction)"
    if _SYSROOT_BUSY_RE.search(stderr):
        return "System transaction in progress"
    return None


def c_locale_env(
    extra: Optional[Mapping[str, str]] = None, base: Optional[Mapping[str, str]] = None, unset: Sequence[str] = ()
) -> dict:
    """The environment for a child: the caller's (``base``) without ``unset``, with every locale variable forced to C,
    and ``extra``."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.startswith("LC_") or key in ("LANG", "LANGUAGE") or key in unset:
            del env[key]
    env.update({"LC_ALL": "C", "LANG": "C"})
    if extra:
        env.update(extra)
    return env


def _spawn(argv: list, env: dict, timeout: float, stdin: Optional[str], cwd: Optional[str]) -> tuple:
    # Bytes in and out, decoded here: text mode would turn "\r\n" into "\n", and a value read back (a secret, a
    # file's content) must compare exactly with the one written.
    try:
        proc = subprocess.run(
            argv,
            input=None if stdin is None else stdin.encode("utf-8"),
            capture_output=True,
            env=env,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandTimeout(argv, timeout) from None
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


@dataclass
class Runner:
    """Runs argv lists; records every command it ran in ``commands``."""

    search_path: Sequence[str] = SEARCH_PATH
    timeout: float = DEFAULT_TIMEOUT
    env: Optional[Mapping[str, str]] = None
    spawn: Callable[..., tuple] = _spawn
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    exists: Callable[[str], bool] = lambda path: os.path.isfile(path) and os.access(path, os.X_OK)
    commands: list = field(default_factory=list)
    _found: dict = field(default_factory=dict, init=False, repr=False)

    def which(self, name: str) -> Optional[str]:
        """Absolute path of ``name`` on the search path, or None."""
        if name in self._found:
            return self._found[name]
        found = None
        if os.path.isabs(name):
            found = name if self.exists(name) else None
        else:
            for directory in list(self.search_path) + os.environ.get("PATH", "").split(os.pathsep):
                if directory and self.exists(os.path.join(directory, name)):
                    found = os.path.join(directory, name)
                    break
        self._found[name] = found
        return found

    def binary(self, name: str) -> str:
        found = self.which(name)
        if not found:
            raise BinaryNotFound(name, self.search_path)
        return found

    def run(
        self,
        argv: Sequence[str],
        check: bool = True,
        ok_rcs: Sequence[int] = (0,),
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        busy_deadline: Optional[float] = None,
        unset: Sequence[str] = (),
    ) -> Result:
        """Run ``argv`` once, or until rpm-ostree stops being busy when ``busy_deadline`` (a clock value) is given.

        The child's environment is the runner's without ``unset``, plus ``env``.  With ``check`` a return code outside
        ``ok_rcs`` raises :class:`CommandFailed`.
        """
        argv = self._resolve(argv)

        def attempt() -> tuple:
            result = self._run_once(argv, stdin, timeout, env, cwd, unset)
            return result, (busy_title(result.stderr) if result.rc != 0 and busy_deadline is not None else None)

        result = self.until_idle(attempt, busy_deadline)
        if check and result.rc not in ok_rcs:
            raise CommandFailed(result)
        return result

    def until_idle(self, attempt: Callable[[], tuple], deadline: Optional[float]) -> Any:
        """The one backoff loop: ``attempt()`` returns (value, the busy transaction's title or None); it is tried again,
        1, 2, 4... up to 15 seconds apart, until it is not busy; past ``deadline`` (a clock value) the error names the
        busy transaction."""
        started = self.clock()
        delay = BACKOFF_FIRST
        while True:
            value, title = attempt()
            if title is None:
                return value
            now = self.clock()
            if deadline is None or now >= deadline:
                raise BusyTimeout(title, now - started)
            self.sleep(min(delay, max(deadline - now, 0.0)))
            delay = min(delay * 2, BACKOFF_MAX)

    def deadline(self, seconds: float) -> float:
        """A ``busy_deadline`` that many seconds from now."""
        return self.clock() + seconds

    def _resolve(self, argv: Sequence[str]) -> list:
        if isinstance(argv, (str, bytes)) or not argv:
            raise TypeError("commands are non-empty argument lists, never strings")
        argv = [str(arg) for arg in argv]
        for arg in argv:
            if _UNSAFE_ARG_RE.search(arg):
                raise RunnerError("argument %r contains a NUL byte" % arg)
        argv[0] = self.binary(argv[0])
        return argv

    def _run_once(self, argv: list, stdin, timeout, env, cwd, unset) -> Result:
        self.commands.append(list(argv))
        child_env = c_locale_env(extra=env, base=self.env, unset=unset)
        rc, out, err = self.spawn(argv, child_env, self.timeout if timeout is None else timeout, stdin, cwd)
        return Result(argv=list(argv), rc=rc, stdout=out or "", stderr=err or "")
