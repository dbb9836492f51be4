"""Pull mode in the lab: a package index of ansible-core for the hosts' Python, and Git repositories over Git's "dumb"
HTTP protocol, both served by the image server, so that a host converges itself with no controller involved.

Layout (``server_dir`` is the HTTP document root, ``http://images.lab:8088/`` inside a host)::

    server_dir/pull/wheels/             the wheels, downloaded on the machine for the hosts' Python and architecture
    server_dir/pull/simple/PROJECT/     a PEP 503 index of them (pip --index-url http://images.lab:8088/pull/simple/)
    server_dir/pull/git/NAME.git        bare repositories, ``git update-server-info`` after each push; their commits
                                        are signed with the lab's OpenPGP key (keys/lab-flatpak.asc)
    <state>/pull-work/NAME/             the work trees the commits are made in (never served)
    <image dir>/pull-wheels/KEY/        downloaded wheels, shared by every lab (key: requirement, Python, architecture)

The wheels come from PyPI with ``pip download`` for the hosts' Python (the image's), and both manylinux tags: with
the newer tag alone, pip quietly falls back to older releases of cffi and cryptography (lab-notes/pull-mode.md).
"""

from __future__ import annotations

import hashlib
import html
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from immutable_hosts.lab import flatpak_content
from immutable_hosts.lab.state import SERVER_URL, LabState, write_whole

# git for ansible-pull's checkout; python3-venv for the virtual environment (Fedora's python3 has both in itself).
IMAGE_PACKAGES: list[str] = ["git", "python3-venv"]
INDEX_URL = f"{SERVER_URL}/pull/simple/"
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@images.lab"}
GIT_ENV |= {"GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@images.lab"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\Z")


class PullContentError(Exception):
    """What the lab cannot serve for pull mode; the message says why."""


def host_python(rootfs: Path) -> str:
    """The hosts' Python as MAJOR.MINOR, from the image's tree (``/usr/lib/python3.N/os.py``)."""
    found = sorted(
        (int(m.group(1)), m.group(0))
        for p in (rootfs / "usr" / "lib").glob("python3.*/os.py")
        if (m := re.fullmatch(r"python3\.(\d+)", p.parent.name))
    )
    if not found:
        raise PullContentError(f"no Python 3 in the image's tree {rootfs}")
    return found[-1][1].removeprefix("python")


def controller_requirement() -> str:
    """The ansible-core the machine runs, pinned: hosts run the same release."""
    return "ansible-core==%s" % importlib.metadata.version("ansible-core")


def wheel_cache(image_dir: Path, requirement: str, python: str, arch: str) -> Path:
    key = hashlib.sha256(json.dumps([requirement, python, arch]).encode()).hexdigest()[:16]
    return image_dir / "pull-wheels" / key


def download_wheels(image_dir: Path, requirement: str, python: str, report: Callable[[str], None]) -> Path:
    """The wheels of ``requirement`` and its dependencies for CPython ``python`` on this machine's architecture, downloaded
    once into the shared cache (a new directory renamed into place, so a second lab never sees half of it)."""
    arch = platform.machine()
    cache = wheel_cache(image_dir, requirement, python, arch)
    if cache.is_dir():
        return cache
    report(f"wheels of {requirement} for Python {python} ({arch})")
    cache.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache.parent))
    try:
        argv = [sys.executable, "-m", "pip", "download", "--isolated", "--disable-pip-version-check", "--quiet"]
        argv += ["--dest", str(temp), "--only-binary=:all:", "--python-version", python]
        argv += ["--platform", f"manylinux_2_28_{arch}", "--platform", f"manylinux2014_{arch}", requirement]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, LC_ALL="C.UTF-8"))
        if done.returncode != 0:
            raise PullContentError(f"pip download {requirement} failed: {done.stderr.strip()[-800:]}")
        try:
            temp.rename(cache)
        except OSError:
            if not cache.is_dir():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return cache


def project_of(wheel: str) -> str:
    """The PEP 503 normalised project name of a wheel file name."""
    return re.sub(r"[-_.]+", "-", wheel.split("-", 1)[0]).lower()


def build_index(server_dir: Path, wheels: Path) -> str:
    """Copy the wheels under ``pull/wheels`` and write a PEP 503 simple index of them; returns the index URL."""
    root = server_dir / "pull"
    served = root / "wheels"
    served.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[str]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        if not (served / wheel.name).exists():
            shutil.copyfile(wheel, served / wheel.name)
        projects.setdefault(project_of(wheel.name), []).append(wheel.name)
    simple = root / "simple"
    for project, files in projects.items():
        links = []
        for name in files:
            digest = hashlib.sha256((served / name).read_bytes()).hexdigest()
            links.append(f'<a href="../../wheels/{html.escape(name)}#sha256={digest}">{html.escape(name)}</a><br>')
        (simple / project).mkdir(parents=True, exist_ok=True)
        write_whole(simple / project / "index.html", "<!DOCTYPE html>\n<html><body>\n%s\n</body></html>\n" % "\n".join(links))
    entries = "\n".join(f'<a href="{p}/">{p}</a><br>' for p in sorted(projects))
    write_whole(simple / "index.html", f"<!DOCTYPE html>\n<html><body>\n{entries}\n</body></html>\n")
    return INDEX_URL


def git(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *argv], cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **GIT_ENV, **(env or {})}
    )
    if done.returncode != 0:
        raise PullContentError(f"git {' '.join(argv)} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def publish_repo(state: LabState, name: str, tree: Path, message: str, sign: bool = True) -> dict[str, str]:
    """Make the repository ``name`` hold ``tree`` as a new commit on ``main`` (none when nothing changed), signed with
    the lab's key unless ``sign`` is false, and serve it over dumb HTTP. Returns the URL, the commit and the signing
    key (ASCII armor)."""
    if not _NAME_RE.match(name):
        raise PullContentError(f"repository name {name!r}: lower-case letters, digits and dashes")
    work = state.root / "pull-work" / name
    bare = state.server_dir / "pull" / "git" / f"{name}.git"
    if not (work / ".git").is_dir():
        work.mkdir(parents=True, exist_ok=True)
        git(["-c", "init.defaultBranch=main", "init", "-q"], cwd=work)
    for entry in work.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    shutil.copytree(tree, work, dirs_exist_ok=True, symlinks=True)
    git(["add", "-A"], cwd=work)
    lay = flatpak_content.Layout(state.server_dir)
    fingerprint = flatpak_content.ensure_key(lay.gnupg)
    try:
        if git(["status", "--porcelain"], cwd=work).strip():
            signing = ["-c", f"user.signingkey={fingerprint}", "commit", "-q", "-S"] if sign else ["commit", "-q"]
            git([*signing, "-m", message], cwd=work, env={"GNUPGHOME": str(lay.gnupg)})
    finally:
        flatpak_content.stop_agent(lay.gnupg)
    if not bare.is_dir():
        bare.parent.mkdir(parents=True, exist_ok=True)
        git(["-c", "init.defaultBranch=main", "init", "-q", "--bare", str(bare)])
    git(["push", "-q", "--force", str(bare), "HEAD:refs/heads/main"], cwd=work)
    git(["update-server-info"], cwd=bare)
    commit = git(["rev-parse", "HEAD"], cwd=work).strip()
    key = flatpak_content.export_key(lay.gnupg, fingerprint, armor=True).decode()
    return {"url": f"{SERVER_URL}/pull/git/{name}.git", "commit": commit, "key": key}


def vendor_collection(collection: Path, tree: Path) -> Path:
    """Put the collection at ``collection`` into ``tree/collections/ansible_collections`` as a Galaxy build and install
    would (``ansible-galaxy collection build``, then ``install --offline``): what a repository for ansible-pull carries
    next to its playbook."""
    tool = Path(sys.executable).parent / "ansible-galaxy"
    galaxy = str(tool) if tool.exists() else "ansible-galaxy"
    with tempfile.TemporaryDirectory(prefix="immutable-hosts-vendor-") as temp:
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", LC_ALL="C.UTF-8")

        def galaxy_run(argv: list[str]) -> None:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
            if done.returncode != 0:
                raise PullContentError(f"{' '.join(argv[:3])} failed: {(done.stderr or done.stdout).strip()[-800:]}")

        galaxy_run([galaxy, "collection", "build", "--output-path", temp, str(collection)])
        tarballs = [str(p) for p in Path(temp).glob("*.tar.gz")]
        galaxy_run([galaxy, "collection", "install", "--offline", "--force", "-p", str(tree / "collections"), *tarballs])
    return tree / "collections"
