# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A Python virtual environment of root's with requirements from a package index (the unit of
``immutable.hosts.python_venv``): tools such as ansible-core installed under ``/var`` on a host whose ``/usr`` is an
image, so that nothing is layered into the OS.

Read: the interpreter's version, the environment's ``pyvenv.cfg`` and its packages (``pip list``), then what pip
itself would install (``pip install --dry-run --report -``, which resolves against the index only for what is not
satisfied already).  Plan: create the environment, create it again for another Python (a virtual environment is tied
to the minor version it was made with), install what pip reported, or nothing.  Apply: one ``pip install`` of every
requirement; an environment made again keeps the old one aside until the new one is complete, and a new one that
cannot be completed is removed, so a failure leaves the host as it was.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from urllib.parse import urlsplit

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value, shorten

# A requirement as pip takes it on its command line, without URLs, paths, options or environment markers:
# a project name, optional extras, optional version specifiers.
_REQUIREMENT_RE = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
    r"(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?"
    r"(?:(?:===|==|!=|~=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+(?:,(?:===|==|!=|~=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+)*)?\Z"
)
_PATH_RE = re.compile(r"^(/[A-Za-z0-9._+-]+)+\Z")
PIP_OPTIONS = ["--disable-pip-version-check", "--no-input", "--no-cache-dir"]
VERSION_CODE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


class VenvError(HostsError):
    """A virtual environment that cannot be read, made or completed; the message says why."""


def canonical(name: str) -> str:
    """A project name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_requirement(value) -> str:
    text = value.replace(" ", "") if isinstance(value, str) else value
    if not isinstance(text, str) or not _REQUIREMENT_RE.match(text):
        raise VenvError(
            "requirement %r is not one pip takes here: a project name with optional extras and version specifiers "
            "(ansible-core, ansible-core==2.19.4, 'ansible-core>=2.19,<2.22'); no URLs, paths, options or markers"
            % (shorten(str(value)),)
        )
    return text


def check_path(value, what: str) -> str:
    if not isinstance(value, str) or not _PATH_RE.match(value) or "/../" in value + "/" or "/./" in value + "/":
        raise VenvError(
            "%s %r is not an absolute, normalised path of letters, digits and ._+- (no .. or . parts)"
            % (what, shorten(str(value)))
        )
    return value


def check_index(value, insecure: bool):
    if value is None:
        return None
    check_value(value, "index_url", VenvError)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise VenvError("index_url %r is not an http(s) URL of a package index (PEP 503)" % (shorten(value),))
    if parts.scheme == "http" and not insecure and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise VenvError(
            "index_url %s is plain HTTP: packages from it cannot be trusted in transit; use https, or set "
            "allow_insecure_index=true for an index on a network you trust (pip's --trusted-host)" % value
        )
    return value


def index_options(index_url, insecure: bool) -> list:
    if index_url is None:
        return []
    options = ["--index-url", index_url]
    if insecure:
        parts = urlsplit(index_url)
        options += ["--trusted-host", parts.netloc.rsplit("@", 1)[-1]]
    return options


def parse_pyvenv_cfg(text):
    """The keys of ``pyvenv.cfg`` (``version`` or ``version_info``, ``home``), or None when there is none."""
    if text is None:
        return None
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def minor(version) -> str:
    return ".".join(str(version or "").split(".")[:2])


def parse_pip_list(stdout: str) -> dict:
    """``pip list --format=json``: {canonical name: version}."""
    try:
        items = json.loads(stdout)
        return {canonical(item["name"]): str(item["version"]) for item in items}
    except (ValueError, TypeError, KeyError) as exc:
        raise VenvError("pip list printed no package list (%s): %s" % (exc, shorten(stdout, 300))) from None


def parse_pip_report(stdout: str) -> list:
    """``pip install --dry-run --report -``: what pip would install, as [(canonical name, version)], in its order."""
    try:
        report = json.loads(stdout)
        return [(canonical(item["metadata"]["name"]), str(item["metadata"]["version"])) for item in report["install"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise VenvError(
            "pip printed no installation report (%s); pip 22.2 or later is needed in the environment: %s"
            % (exc, shorten(stdout, 300))
        ) from None


def unsafe_ancestor(host, path: str):
    """The first existing directory on the way to ``path`` (itself included) that root must not act through: a
    symbolic link, owned by someone else than root (or the user the module runs as), or writable by group or
    others; None when every one is safe."""
    owners = {0, os.geteuid()}
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        try:
            info = os.lstat(host.path(current))
        except FileNotFoundError:
            return None
        except OSError as exc:
            return "%s (%s)" % (current, exc.strerror)
        if stat.S_ISLNK(info.st_mode):
            return "%s (a symbolic link)" % current
        if info.st_uid not in owners or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return "%s (owned by uid %d, mode %04o)" % (current, info.st_uid, stat.S_IMODE(info.st_mode))
    return None


def plan_venv(current: dict, desired: dict) -> tuple:
    """(action, reason, diff, predicted packages): the pure plan from what :meth:`VenvUnit.read` found."""
    venv = current["venv"]
    before = {"state": "absent"}
    if venv is not None:
        before = {"state": "present", "python": venv["python"], "packages": pinned(current["packages"] or {})}
    if desired["state"] == "absent":
        return ("remove" if venv is not None else None), None, {"before": before, "after": {"state": "absent"}}, {}
    python = current["python"]
    if venv is None:
        action, reason = "create", "the environment does not exist"
    elif not venv["usable"]:
        action, reason = "recreate", "the environment is incomplete (%s)" % venv["problem"]
    elif minor(venv["python"]) != minor(python):
        action, reason = "recreate", "it was made with Python %s, the interpreter is Python %s" % (venv["python"], python)
    elif current["install"]:
        action, reason = "install", "pip would install %s" % ", ".join("%s==%s" % item for item in current["install"])
    else:
        action, reason = None, None
    if action in ("create", "recreate"):
        packages = None  # resolved by the install itself
        after = {"state": "present", "python": python, "packages": list(desired["requirements"])}
    else:
        packages = dict(current["packages"])
        packages.update(dict(current["install"]))
        after = {"state": "present", "python": venv["python"], "packages": pinned(packages)}
    return action, reason, {"before": before, "after": after}, packages


def pinned(packages: dict) -> list:
    return ["%s==%s" % item for item in sorted(packages.items())]


ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    python=dict(type="path", default="/usr/bin/python3"),
    requirements=dict(type="list", elements="str", default=[]),
    index_url=dict(type="str"),
    allow_insecure_index=dict(type="bool", default=False),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


class VenvUnit:
    """``immutable.hosts.python_venv``: one virtual environment of root's with its requirements installed."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS = dict(required_if=[("state", "present", ("requirements",))])

    def desired(self, params: dict, host) -> dict:
        path = check_path(params["path"], "path")
        if path.count("/") < 2:
            raise VenvError("path %s is a top-level directory; give the environment a directory of its own" % path)
        python = check_path(params["python"], "python")
        requirements = [check_requirement(r) for r in params["requirements"] or []]
        if params["state"] == "present" and not requirements:
            raise VenvError("state=present needs at least one requirement")
        names = [canonical(re.split(r"[\[<>=!~]", r, maxsplit=1)[0]) for r in requirements]
        if len(set(names)) != len(names):
            raise VenvError("each project is named once in requirements (%s)" % ", ".join(requirements))
        insecure = params["allow_insecure_index"]
        index_url = check_index(params["index_url"], insecure)
        return {
            "path": path,
            "python": python,
            "requirements": requirements,
            "index": index_options(index_url, insecure),
            "index_url": index_url,
            "state": params["state"],
        }

    def read(self, host, desired: dict) -> dict:
        path = desired["path"]
        unsafe = unsafe_ancestor(host, path)
        if unsafe is not None:
            raise VenvError(
                "%s: root does not act through %s; keep the environment in directories only root can change" % (path, unsafe)
            )
        config = parse_pyvenv_cfg(host.read_text(os.path.join(path, "pyvenv.cfg")))
        venv = None
        if config is not None or host.exists(path):
            version = (config or {}).get("version") or (config or {}).get("version_info")
            problem = None
            if not version:
                problem = "no pyvenv.cfg with a version"
            elif not host.exists(os.path.join(path, "bin/python")):
                problem = "no bin/python"
            venv = {"python": version, "usable": problem is None, "problem": problem}
        current = {"venv": venv, "python": None, "packages": None, "install": []}
        if desired["state"] == "absent":
            if venv is not None and venv["usable"]:
                current["packages"] = self._packages(host, path, check=False)
            return current
        if not host.exists(desired["python"]):
            raise VenvError("the interpreter %s is not on this host; set python to the Python 3 to use" % desired["python"])
        current["python"] = host.run([desired["python"], "-c", VERSION_CODE]).stdout.strip()
        if venv is not None and venv["usable"] and minor(venv["python"]) == minor(current["python"]):
            current["packages"] = self._packages(host, path)
            current["install"] = self._would_install(host, desired)
        elif venv is not None and venv["usable"]:
            current["packages"] = self._packages(host, path, check=False)
        return current

    def _packages(self, host, path: str, check: bool = True):
        result = host.run([os.path.join(path, "bin/python"), "-m", "pip", "list", "--format=json", *PIP_OPTIONS], check=check)
        if result.rc != 0:
            return {}
        return parse_pip_list(result.stdout)

    def _would_install(self, host, desired: dict) -> list:
        argv = [os.path.join(desired["path"], "bin/python"), "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-"]
        result = host.run([*argv, *PIP_OPTIONS, *desired["index"], *desired["requirements"]], check=False)
        if result.rc != 0:
            raise VenvError(
                "pip cannot resolve %s in %s (exit code %d): %s"
                % (" ".join(desired["requirements"]), desired["path"], result.rc, shorten(result.stderr.strip(), 800))
            )
        return parse_pip_report(result.stdout)

    def plan(self, current: dict, desired: dict) -> Plan:
        action, reason, diff, packages = plan_venv(current, desired)
        result = {
            "path": desired["path"],
            "action": action,
            "reason": reason,
            "python_version": current["python"],
            "installed": ["%s==%s" % item for item in current["install"]] if action == "install" else [],
            "packages": packages if packages is not None else {},
        }
        return Plan(changed=action is not None, diff=diff, actions=action, result=result)

    def apply(self, host, plan: Plan, desired: dict) -> dict:
        path = desired["path"]
        if plan.actions == "remove":
            shutil.rmtree(host.path(path))
            return {}
        if plan.actions == "install":
            self._install(host, desired)
            return {}
        aside = None
        if plan.actions == "recreate":
            aside = "%s.old-%d" % (path, os.getpid())
            os.rename(host.path(path), host.path(aside))
        try:
            parent = os.path.dirname(path)
            if not host.exists(parent):
                os.makedirs(host.path(parent), mode=0o755)
            host.run([desired["python"], "-m", "venv", path])
            fd = os.open(host.path(path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                os.fchmod(fd, 0o755)  # read and run by all, as /usr is; by descriptor, never through a link
            finally:
                os.close(fd)
            self._install(host, desired)
        except BaseException:
            if os.path.lexists(host.path(path)):
                shutil.rmtree(host.path(path), ignore_errors=True)
            if aside is not None:
                os.rename(host.path(aside), host.path(path))
            raise
        if aside is not None:
            shutil.rmtree(host.path(aside), ignore_errors=True)
        return {}

    def _install(self, host, desired: dict) -> None:
        argv = [os.path.join(desired["path"], "bin/python"), "-m", "pip", "install", "--quiet"]
        result = host.run([*argv, *PIP_OPTIONS, *desired["index"], *desired["requirements"]], check=False)
        if result.rc != 0:
            raise VenvError(
                "pip install %s into %s failed (exit code %d): %s"
                % (" ".join(desired["requirements"]), desired["path"], result.rc, shorten(result.stderr.strip(), 800))
            )

    def report(self, host, plan: Plan, desired: dict) -> dict:
        if not plan.changed or host.check_mode or desired["state"] == "absent":
            return {}
        packages = self._packages(host, desired["path"])
        result = {"packages": packages}
        if plan.actions in ("create", "recreate"):
            result["installed"] = pinned(packages)
            plan.diff["after"]["packages"] = pinned(packages)
        return result


UNIT = VenvUnit()
