"""Root acting in a user's tree: every component opened without following links, owners checked, files changed
through their descriptors only.  These tests run as root (make test does) with a made-up owner uid."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.common._files import UnsafePath

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="acting for another user needs root")

UID = GID = 4242


@pytest.fixture
def home(tmp_path):
    base = tmp_path / "home"
    base.mkdir(mode=0o755)
    alice = base / "alice"
    alice.mkdir(mode=0o700)
    os.chown(alice, UID, GID)
    return alice


@pytest.fixture
def victim(tmp_path):
    """A root-only file outside the home, like /etc/shadow."""
    path = tmp_path / "shadow"
    path.write_text("root:$6$secret-hash:19000::::::\n")
    path.chmod(0o600)
    return path


def open_units(home, create=True):
    return safe_files.open_directory(
        str(home / ".config/containers/systemd"),
        UID,
        GID,
        home=str(home),
        create={str(home / ".config"): 0o700} if create else None,
    )


def owner_and_mode(path):
    info = os.lstat(path)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_a_missing_tree_is_created_as_the_user_and_the_file_written_atomically(home):
    with open_units(home) as directory:
        directory.write("web.container", "[Container]\nImage=a.io/b:c\n", 0o644)
        assert directory.read_text("web.container") == "[Container]\nImage=a.io/b:c\n"
        assert directory.names() == ["web.container"]
    assert owner_and_mode(home / ".config") == (UID, GID, 0o700)
    assert owner_and_mode(home / ".config/containers") == (UID, GID, 0o755)
    assert owner_and_mode(home / ".config/containers/systemd/web.container") == (UID, GID, 0o644)


def test_nothing_is_created_without_create(home):
    assert open_units(home, create=False) is None
    assert not (home / ".config").exists()


def test_a_link_planted_in_the_users_tree_is_refused_and_nothing_is_written_through_it(home, tmp_path):
    system = tmp_path / "etc-containers"
    (system / "systemd").mkdir(parents=True)
    (home / ".config").mkdir()
    os.chown(home / ".config", UID, GID)
    os.symlink(system, home / ".config/containers")
    with pytest.raises(UnsafePath, match=r"containers is a symbolic link \(to .*etc-containers\); refusing to follow it"):
        open_units(home)
    assert list((system / "systemd").iterdir()) == []


def test_a_unit_file_linked_to_a_root_only_file_is_never_read(home, victim):
    with open_units(home) as directory:
        os.symlink(victim, home / ".config/containers/systemd/web.container")
        with pytest.raises(UnsafePath, match=r"web\.container is a symbolic link") as error:
            directory.read_text("web.container")
        assert "secret-hash" not in str(error.value)
        with pytest.raises(UnsafePath):
            directory.set_attributes("web.container", 0o644)
    assert owner_and_mode(victim) == (0, 0, 0o600)


def test_a_hard_link_or_a_file_of_somebody_else_is_refused(home, victim):
    with open_units(home) as directory:
        os.link(victim, home / ".config/containers/systemd/hard.container")
        with pytest.raises(UnsafePath, match="belongs to root"):
            directory.read_text("hard.container")
        own = home / ".config/containers/systemd/own.container"
        own.write_text("[Container]\n")
        os.chown(own, UID, GID)
        os.link(own, home / ".config/containers/systemd/twice.container")
        with pytest.raises(UnsafePath, match="2 hard links"):
            directory.read_text("twice.container")


def test_a_fifo_in_place_of_a_file_does_not_hang(home):
    with open_units(home) as directory:
        os.mkfifo(home / ".config/containers/systemd/web.container")
        with pytest.raises(UnsafePath, match="not a regular file"):
            directory.read_text("web.container")


def test_a_directory_of_somebody_else_inside_the_home_is_refused(home):
    (home / ".config/containers").mkdir(parents=True)
    os.chown(home / ".config", UID, GID)
    with pytest.raises(UnsafePath, match="containers belongs to root"):
        open_units(home)


def test_a_home_below_a_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    alice = shared / "alice"
    alice.mkdir()
    os.chown(alice, UID, GID)
    with pytest.raises(UnsafePath, match="writable by users other than root"):
        safe_files.open_directory(str(alice / "x"), UID, GID, home=str(alice), create={})


def test_a_home_of_somebody_else_is_refused(home):
    os.chown(home, 0, 0)
    with pytest.raises(UnsafePath, match="belongs to root"):
        open_units(home)


def test_the_swap_after_the_rename_cannot_redirect_owner_or_mode(home, victim, monkeypatch):
    """The race an inotify loop in the user's directory wins against chown/chmod by path after the rename."""
    real_rename = os.rename

    def rename_then_swap(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        os.unlink(dst, dir_fd=dst_dir_fd)
        os.symlink(str(victim), dst, dir_fd=dst_dir_fd)

    with open_units(home) as directory:
        monkeypatch.setattr(safe_files.os, "rename", rename_then_swap)
        directory.write("web.container", "[Container]\n", 0o644)
    assert owner_and_mode(victim) == (0, 0, 0o600)


def test_root_trees_are_checked_to_their_end(tmp_path):
    etc = tmp_path / "etc"
    with safe_files.open_directory(str(etc / "containers/systemd"), create={}) as directory:
        directory.write("web.container", "[Container]\n", 0o644)
    assert owner_and_mode(etc / "containers/systemd/web.container") == (0, 0, 0o644)
    (etc / "containers/systemd").chmod(0o777)
    with pytest.raises(UnsafePath, match="writable by users other than root"):
        safe_files.open_directory(str(etc / "containers/systemd"))


def test_links_root_owns_are_followed_in_root_trees(tmp_path):
    real = tmp_path / "var/home"
    real.mkdir(parents=True)
    os.symlink("var/home", tmp_path / "home")
    with safe_files.open_directory(str(tmp_path / "home/x"), create={}) as directory:
        assert directory.path == str(real / "x")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(home, monkeypatch):
    with open_units(home) as directory:
        directory.write("web.container", "old\n", 0o644)

        def boom(*_args, **_kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(safe_files.os, "fsync", boom)
        with pytest.raises(OSError, match="No space"):
            directory.write("web.container", "new\n", 0o644)
        monkeypatch.undo()
        assert directory.read_text("web.container") == "old\n"
        assert directory.names() == ["web.container"]
