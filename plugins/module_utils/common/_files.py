# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files our modules read and write, opened so that root never acts through a path somebody else controls.

A directory is opened one component at a time from ``/`` with ``openat``:

- Above the owner's tree (``/``, ``/var``, ``/var/home``) every directory must belong to root and be writable by
  nobody else (or be sticky, like ``/tmp``, where nobody can replace an entry root owns); a symbolic link there
  is followed only when root owns it in such a directory.  Root's configuration trees (``/etc/containers/systemd``)
  are checked this way to their end.
- In a user's tree (``~/.config/containers/systemd`` of a rootless unit) the home directory must belong to the
  user, and every component below it is opened with ``O_NOFOLLOW`` and must belong to the user too: a symbolic
  link or a directory of somebody else stops the module with a message that names it.

Files are then read and written relative to that directory's descriptor: read with ``O_NOFOLLOW`` and only when
they are regular files of the tree's owner; written to a new temporary file whose owner and mode are set on its
descriptor (``fchown``/``fchmod``), synced, renamed over the old one in the same directory, and the directory
synced, so a power cut leaves the old file or the new one, never an empty one.  Nothing is ever changed by path.

When the module already runs as the owner (not root), it has only that user's rights and follows links as any of
the user's programs would.

Standard library only (SELinux labels are set when the ``selinux`` bindings are importable), Python 3.9+.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import secrets
import stat
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError

try:
    import selinux  # type: ignore[import-not-found]
except ImportError:  # the bindings are optional: without them new files keep the label they are created with
    selinux = None

MAX_READ = 1024 * 1024
MAX_LINK_HOPS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW_DIR_FLAGS = _DIR_FLAGS | os.O_NOFOLLOW
# O_NONBLOCK: a FIFO planted in place of a file must not hang the module.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafePath(HostsError):
    """A path the module refuses to act through; the message names the component and what to do."""


def _who(uid: int) -> str:
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnsafePath("%r is not a plain file name" % (name,))
    return name


def _components(path: str) -> list:
    if not path.startswith("/"):
        raise UnsafePath("%s is not an absolute path" % path)
    return [part for part in os.path.normpath(path).split("/") if part]


def _trusted_parent(info: os.stat_result, path: str) -> None:
    """A directory root may look things up in: root's, and nobody else can add or replace entries in it."""
    if info.st_uid != 0:
        raise UnsafePath("%s belongs to %s, not root; refusing to act below it as root" % (path, _who(info.st_uid)))
    writable = info.st_mode & (stat.S_IWOTH | (stat.S_IWGRP if info.st_gid != 0 else 0))
    if writable and not info.st_mode & stat.S_ISVTX:
        raise UnsafePath(
            "%s is writable by users other than root (mode %04o); refusing to act below it as root"
            % (path, stat.S_IMODE(info.st_mode))
        )


class Directory:
    """An open directory of one owner; every file operation goes through its descriptor."""

    def __init__(self, fd: int, path: str, uid: int, gid: int, strict: bool):
        self.fd = fd
        self.path = path
        self.uid = uid
        self.gid = gid
        self.strict = strict

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _where(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _open_file(self, name: str) -> Optional[int]:
        try:
            return os.open(_check_name(name), _READ_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise UnsafePath(
                    "%s is a symbolic link; refusing to read or replace it as root (remove the link)" % self._where(name)
                ) from None
            raise

    def _check_file(self, fd: int, name: str) -> os.stat_result:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath("%s is not a regular file; refusing to read or replace it" % self._where(name))
        if self.strict and info.st_uid != self.uid:
            raise UnsafePath(
                "%s belongs to %s, not %s; refusing to read or replace it"
                % (self._where(name), _who(info.st_uid), _who(self.uid))
            )
        if self.strict and info.st_nlink > 1:
            raise UnsafePath(
                "%s has %d hard links, so it may be another file; refusing to read or replace it"
                % (self._where(name), info.st_nlink)
            )
        return info

    def read_bytes(self, name: str, limit: int = MAX_READ) -> Optional[bytes]:
        """The file's bytes, or None when it does not exist."""
        fd = self._open_file(name)
        if fd is None:
            return None
        try:
            self._check_file(fd, name)
            chunks, size = [], 0
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise UnsafePath("%s is larger than %d bytes; refusing to read it" % (self._where(name), limit))
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_text(self, name: str, limit: int = MAX_READ) -> Optional[str]:
        data = self.read_bytes(name, limit)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafePath("%s is not UTF-8 text" % self._where(name)) from None

    def attributes(self, name: str) -> Optional[dict]:
        """``{"owner", "group", "mode"}`` of the file, or None when it does not exist."""
        fd = self._open_file(name)
        if fd is None:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePath("%s is not a regular file" % self._where(name))
            return {"owner": info.st_uid, "group": info.st_gid, "mode": "%04o" % stat.S_IMODE(info.st_mode)}
        finally:
            os.close(fd)

    def set_attributes(self, name: str, mode: int) -> None:
        """Give an existing file the tree's owner and ``mode``, through its descriptor."""
        fd = self._open_file(name)
        if fd is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", self._where(name))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                raise UnsafePath("%s is not a regular file with one link; refusing to change it" % self._where(name))
            if (info.st_uid, info.st_gid) != (self.uid, self.gid) and os.geteuid() == 0:
                os.fchown(fd, self.uid, self.gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def write(self, name: str, data, mode: int) -> None:
        """Replace (or create) the file atomically: a new file, owner and mode set on its descriptor, synced, renamed
        over the old one, and the directory synced."""
        _check_name(name)
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        temp = ".%s.%s.tmp" % (name, secrets.token_hex(6))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        try:
            try:
                if os.geteuid() == 0 and (self.uid, self.gid) != (0, 0):
                    os.fchown(fd, self.uid, self.gid)
                os.fchmod(fd, mode)
                _label(fd, self._where(name), mode)
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self.fd)
            raise
        os.fsync(self.fd)

    def remove(self, name: str) -> bool:
        """Remove the file (a link is removed itself, never what it points to); False when there was none."""
        try:
            os.unlink(_check_name(name), dir_fd=self.fd)
        except FileNotFoundError:
            return False
        os.fsync(self.fd)
        return True

    def names(self) -> list:
        return sorted(os.listdir(self.fd))


def _label(fd: int, path: str, mode: int) -> None:
    """The SELinux label the policy gives ``path``, set on the new file's descriptor (as ansible's atomic_move does)."""
    if selinux is None:
        return
    try:
        if selinux.is_selinux_enabled() != 1:
            return
        rc, context = selinux.matchpathcon(path, stat.S_IFREG | mode)
        if rc == 0 and context:
            selinux.fsetfilecon(fd, context)
    except (OSError, AttributeError):
        return


def _walk_trusted(components: list, last_owner: int, create: Optional[dict]) -> tuple:
    """Open ``/`` + components as root trusts them; the last one must belong to ``last_owner``.

    Returns ``(fd, path)``, or ``(None, path)`` when a component is missing and ``create`` is None.
    """
    pending = list(components)
    fd = os.open("/", _DIR_FLAGS)
    path = "/"
    hops = 0
    try:
        while pending:
            name = pending.pop(0)
            parent = os.fstat(fd)
            _trusted_parent(parent, path)
            here = os.path.join(path, name)
            created = False
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    os.close(fd)
                    return None, os.path.join(here, *pending)
                os.mkdir(name, 0o700, dir_fd=fd)
                created = True
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                if info.st_uid != 0:
                    raise UnsafePath("%s is a symbolic link of %s; refusing to follow it as root" % (here, _who(info.st_uid)))
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise UnsafePath("too many symbolic links resolving %s" % here)
                target = os.readlink(name, dir_fd=fd)
                pending = _components(os.path.join(path, target)) + pending
                os.close(fd)
                fd, path = os.open("/", _DIR_FLAGS), "/"
                continue
            owner = last_owner if not pending else 0
            if not stat.S_ISDIR(info.st_mode):
                raise UnsafePath("%s is not a directory" % here)
            if info.st_uid != owner:
                raise UnsafePath("%s belongs to %s, not %s; refusing to act in it" % (here, _who(info.st_uid), _who(owner)))
            child = os.open(name, _NOFOLLOW_DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd, path = child, here
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                raise UnsafePath("%s changed while it was opened" % here)
            if created:  # the mode set on the descriptor, whatever the umask
                os.fchmod(fd, create.get(here, 0o755))
        if last_owner == 0:
            _trusted_parent(os.fstat(fd), path)
        return fd, path
    except BaseException:
        os.close(fd)
        raise


def _walk_owned(fd: int, base: str, components: list, uid: int, gid: int, create: Optional[dict]) -> tuple:
    """From the owner's home (``fd``, consumed) down ``components``: no link followed, every directory the owner's."""
    path = base
    for index, name in enumerate(components):
        here = os.path.join(path, name)
        try:
            child = _open_owned(fd, name, here, uid, gid, create)
        finally:
            os.close(fd)
        if child is None:
            return None, os.path.join(here, *components[index + 1 :])
        fd, path = child, here
    return fd, path


def _open_owned(fd: int, name: str, here: str, uid: int, gid: int, create: Optional[dict]) -> Optional[int]:
    created = False
    try:
        child = _open_dir_nofollow(fd, name, here)
    except FileNotFoundError:
        if create is None:
            return None
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=fd)
            created = True
        child = _open_dir_nofollow(fd, name, here)
    try:
        info = os.fstat(child)
        if created and info.st_uid == 0 and uid != 0:
            os.fchown(child, uid, gid)
            os.fchmod(child, create.get(here, 0o755))  # on the descriptor, whatever the umask
            info = os.fstat(child)
        if info.st_uid != uid:
            raise UnsafePath("%s belongs to %s, not %s; refusing to act in it as root" % (here, _who(info.st_uid), _who(uid)))
    except BaseException:
        os.close(child)
        raise
    return child


def _open_dir_nofollow(fd: int, name: str, here: str) -> int:
    try:
        return os.open(name, _NOFOLLOW_DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(
            "%s is a symbolic link (to %s); refusing to follow it as root: replace the link with a directory, "
            "or run the task as that user" % (here, os.readlink(name, dir_fd=fd))
        )
    raise UnsafePath("%s is not a directory" % here)


def open_directory(path: str, uid: int = 0, gid: int = 0, home: Optional[str] = None, create: Optional[dict] = None):
    """Open the directory ``path`` for files of ``uid``/``gid``.

    Without ``home`` the whole path is root's (``uid`` 0).  With ``home`` (the owner's home directory, from the
    passwd database) ``path`` must lie inside it; the home must belong to ``uid`` and so must everything below it.
    ``create`` maps directories that may be created to their modes (any other missing one gets 0755); None creates
    nothing, and a missing directory returns None.  A module that does not run as root acts with its own user's
    rights only, and opens ``path`` as any program of that user would.
    """
    target = _components(path)
    if os.geteuid() != 0:
        return _open_as_self(path, os.geteuid(), os.getegid(), create)
    if home is None:
        if uid != 0:
            raise UnsafePath("files of %s are written below their home directory only" % _who(uid))
        fd, opened = _walk_trusted(target, 0, create)
        return None if fd is None else Directory(fd, opened, 0, gid, strict=True)
    base = _components(home)
    if not base or target[: len(base)] != base:
        raise UnsafePath("%s is not inside the home directory %s" % (path, home))
    fd, opened = _walk_trusted(base, uid, None)
    if fd is None:
        raise UnsafePath("the home directory %s of %s does not exist" % (home, _who(uid)))
    fd, opened = _walk_owned(fd, opened, target[len(base) :], uid, gid, create)
    return None if fd is None else Directory(fd, opened, uid, gid, strict=True)


def _open_as_self(path: str, uid: int, gid: int, create: Optional[dict]):
    """The module runs as the owner: it has only the owner's rights, so the owner's links are followed."""
    if create is not None:
        missing, probe = [], os.path.normpath(path)
        while not os.path.isdir(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):
            os.mkdir(directory, create.get(directory, 0o755))
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    return Directory(fd, path, uid, gid, strict=False)


def replace_file(path: str, data, mode: Optional[int] = None, create_directory: Optional[int] = None) -> None:
    """Replace one of root's files (``/etc/subuid``, ``/etc/rpm-ostreed.conf``) atomically and durably, keeping
    its mode (``mode``, else 0644, for a new file).  Its directory must be root's alone and exist, unless
    ``create_directory`` gives the mode it is created with (``/etc/yum.repos.d``, a unit's drop-in directory)."""
    parent = os.path.dirname(path) or "/"
    directory = open_directory(parent, create=None if create_directory is None else {parent: create_directory})
    if directory is None:
        raise FileNotFoundError(errno.ENOENT, "the directory of %s does not exist" % path, os.path.dirname(path))
    with directory:
        name = os.path.basename(path)
        current = directory.attributes(name)
        keep = int(current["mode"], 8) if current is not None else None
        directory.write(name, data, mode if mode is not None else (keep if keep is not None else 0o644))


def remove_file(path: str) -> bool:
    """Remove one of root's files (by its directory's descriptor, no link followed); False when it or its directory
    is missing."""
    directory = open_directory(os.path.dirname(path) or "/")
    if directory is None:
        return False
    with directory:
        return directory.remove(os.path.basename(path))
