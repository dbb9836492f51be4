"""immutable.hosts.flatpak_override on real override keyfiles written by flatpak 1.14/1.16."""

from __future__ import annotations

import os
import pwd
import shutil

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _overrides as overrides
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import FIXTURES, Tools, run_unit


@pytest.fixture(params=["1.14.10", "1.16.6"])
def run(request, tmp_path, capsys):
    version = FIXTURES / "flatpak" / request.param
    (tmp_path / "overrides").mkdir()
    shutil.copy(version / "override-file.keyfile", tmp_path / "overrides" / "org.test.Hello")
    fake = Tools({}, present=("flatpak",))

    def run(args):
        host = Host(runner=fake.runner(), environ={"FLATPAK_SYSTEM_DIR": str(tmp_path)})
        result = run_unit(overrides.UNIT, args, host, capsys)
        assert fake.calls == []  # overrides cost no flatpak process at all
        return result

    run.file = tmp_path / "overrides" / "org.test.Hello"
    run.tmp = tmp_path
    return run


def test_merge_changes_one_entry_then_is_converged(run):
    args = {"app": "org.test.Hello", "filesystems": ["home"], "nosockets": ["wayland"]}
    result = run(args)
    assert result["changed"] is True and result["path"] == str(run.file)
    assert result["diff"]["before"]["filesystems"] == ["!host", "home:ro", "xdg-download:create"]
    assert result["diff"]["after"]["filesystems"] == ["!host", "home", "xdg-download:create"]
    assert result["diff"]["after"]["sockets"] == ["!wayland", "!x11"]
    written = overrides.parse_override(run.file.read_text())
    assert written["context"]["filesystems"]["home"] == "home" and written["session_bus"]["org.a.B"] == "talk"
    assert run(args)["changed"] is False


def test_check_mode_writes_nothing(run):
    before = run.file.read_text()
    result = run({"app": "org.test.Hello", "mode": "exact", "sockets": ["wayland"], "_ansible_check_mode": True})
    assert result["changed"] is True and result["diff"]["after"] == {"sockets": ["wayland"]}
    assert run.file.read_text() == before


def test_exact_and_reset(run):
    assert run({"app": "org.test.Hello", "mode": "exact", "environment": {"A": "1"}})["changed"] is True
    assert run.file.read_text() == "[Environment]\nA=1\n"
    assert run({"app": "org.test.Hello", "state": "absent"})["changed"] is True and not run.file.exists()
    assert run({"app": "org.test.Hello", "state": "absent"})["changed"] is False


def test_global_override_is_created(run):
    result = run({"global": True, "environment": {"GTK_THEME": "Adwaita:dark"}, "talk_names": ["org.freedesktop.Flatpak"]})
    assert result["changed"] is True
    assert (run.tmp / "overrides" / "global").read_text() == (
        "[Session Bus Policy]\norg.freedesktop.Flatpak=talk\n\n[Environment]\nGTK_THEME=Adwaita:dark\n"
    )


BAD = [
    {},
    {"app": "org.test.Hello", "global": True, "sockets": ["x11"]},
    {"app": "firefox", "sockets": ["x11"]},
    {"app": "org.test.Hello"},
    {"app": "org.test.Hello", "sockets": ["telepathy"]},
    {"app": "org.test.Hello", "sockets": ["x11"], "nosockets": ["x11"]},
    {"app": "org.test.Hello", "devices": ["gpu"]},
    {"app": "org.test.Hello", "shares": ["everything"]},
    {"app": "org.test.Hello", "features": ["flying"]},
    {"app": "org.test.Hello", "filesystems": ["home:rx"]},
    {"app": "org.test.Hello", "filesystems": ["somewhere"]},
    {"app": "org.test.Hello", "nofilesystems": ["home:ro"]},
    {"app": "org.test.Hello", "filesystems": ["home"], "nofilesystems": ["home"]},
    {"app": "org.test.Hello", "environment": {"BAD-NAME": "x"}},
    {"app": "org.test.Hello", "environment": {"A": "x"}, "unset_environment": ["A"]},
    {"app": "org.test.Hello", "talk_names": ["nodots"]},
    {"app": "org.test.Hello", "talk_names": ["org.a.B"], "own_names": ["org.a.B"]},
    {"app": "org.test.Hello", "persist": ["/etc"]},
    {"app": "org.test.Hello", "persist": ["a/../.."]},
    {"app": "org.test.Hello", "mode": "exact", "state": "absent"},
    {"app": "org.test.Hello", "sockets": ["x11"], "mode": "replace"},
    {"app": "org.test.Hello", "sockets": ["x11"], "user": "no-such-user-here"},
    {"app": "org.test.Hello", "sockets": ["x11"], "installation": "missing"},
    {"app": "org.test.Hello", "sockets": ["x11;wayland"]},
]


@pytest.mark.parametrize("args", BAD)
def test_bad_input_fails_before_anything_is_written(run, args):
    before = run.file.read_text()
    result = run(args)
    assert result["failed"] is True, result
    assert run.file.read_text() == before and sorted(p.name for p in run.file.parent.iterdir()) == ["org.test.Hello"]


# --- another user's installation: root acts in that user's home ----------------------------------------------

ALICE_UID = 4242


@pytest.fixture
def alice(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("writes files owned by another user: needs root")
    home = tmp_path / "home/alice"
    home.mkdir(parents=True)
    os.chown(home, ALICE_UID, ALICE_UID)
    entry = pwd.struct_passwd(("alice", "x", ALICE_UID, ALICE_UID, "", str(home), "/bin/bash"))
    system = tmp_path / "var/lib/flatpak"
    (system / "overrides").mkdir(parents=True)
    fake = Tools({}, present=("flatpak", "runuser"))

    def run(args):
        host = Host(runner=fake.runner(), environ={"FLATPAK_SYSTEM_DIR": str(system)}, passwd={"alice": entry}, euid=0)
        return run_unit(overrides.UNIT, dict(args, user="alice", scope="user"), host, capsys)

    run.home = home
    run.system = system
    return run


def test_another_users_override_is_written_as_that_user(alice):
    result = alice({"app": "org.test.Hello", "filesystems": ["xdg-download"]})
    path = alice.home / ".local/share/flatpak/overrides/org.test.Hello"
    assert result["changed"] is True and result["path"] == str(path)
    assert path.read_text() == "[Context]\nfilesystems=xdg-download;\n"
    assert (path.stat().st_uid, path.stat().st_mode & 0o777) == (ALICE_UID, 0o644)
    assert (alice.home / ".local").stat().st_uid == ALICE_UID and (alice.home / ".local").stat().st_mode & 0o777 == 0o700
    assert alice({"app": "org.test.Hello", "filesystems": ["xdg-download"]})["changed"] is False


def test_a_user_installation_linked_to_the_system_one_is_refused(alice):
    """~/.local/share/flatpak -> /var/lib/flatpak made the user's override a system override owned by the user."""
    (alice.home / ".local/share").mkdir(parents=True)
    for part in (".local", ".local/share"):
        os.chown(alice.home / part, ALICE_UID, ALICE_UID)
    os.symlink(alice.system, alice.home / ".local/share/flatpak")
    for check in (True, False):
        result = alice({"app": "org.test.Hello", "filesystems": ["host"], "_ansible_check_mode": check})
        assert result["failed"] is True and "flatpak is a symbolic link" in result["msg"]
    assert list((alice.system / "overrides").iterdir()) == []


def test_an_override_linked_to_a_root_only_file_is_never_read(alice, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("[Environment]\nROOT_PASSWORD_HASH=very-secret-hash\n")
    secret.chmod(0o600)
    overrides = alice.home / ".local/share/flatpak/overrides"
    overrides.mkdir(parents=True)
    path = overrides
    while path != alice.home:
        os.chown(path, ALICE_UID, ALICE_UID)
        path = path.parent
    os.symlink(secret, overrides / "org.test.Hello")
    result = alice({"app": "org.test.Hello", "state": "absent", "_ansible_check_mode": True})
    assert result["failed"] is True and "is a symbolic link" in result["msg"] and "very-secret-hash" not in str(result)
