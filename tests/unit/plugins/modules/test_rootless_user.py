"""immutable.hosts.rootless_user on /etc/subuid, /etc/subgid and a linger directory under tmp_path, with usermod,
useradd and loginctl answering from a table."""

from __future__ import annotations

import pwd

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _rootless as rootless
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, run_unit

SUBIDS = "alice:100000:65536\n"
OK = (0, "", "")
USERMOD = "usermod --add-subuids 165536-231071 --add-subgids 165536-231071 core"
LINGER = "loginctl enable-linger core"


def user(name, uid, home=None):
    return pwd.struct_passwd((name, "x", uid, uid, "", home or "/var/home/" + name, "/bin/bash"))


@pytest.fixture
def host(tmp_path, capsys):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "subuid").write_text(SUBIDS)
    (etc / "subgid").write_text(SUBIDS)
    linger = tmp_path / "var/lib/systemd/linger"
    linger.mkdir(parents=True)
    users = {"alice": user("alice", 1001), "core": user("core", 1000), "toor": user("toor", 0)}

    def run(args, tools):
        return run_unit(rootless.UNIT, args, Host(runner=tools.runner(), root=str(tmp_path), passwd=users), capsys)

    run.etc, run.linger, run.users = etc, linger, users
    return run


def tools(answers, present=("usermod", "useradd", "loginctl")):
    return Tools(answers, present=present)


def test_new_ranges_and_linger(host):
    fake = tools({USERMOD: OK, LINGER: OK})
    result = host({"name": "core"}, fake)
    assert result["changed"] is True and fake.calls == [USERMOD, LINGER]
    assert result["uid"] == 1000 and result["runtime_dir"] == "/run/user/1000"
    assert result["quadlet_dir"] == "/var/home/core/.config/containers/systemd"
    assert result["subuid"] == [{"start": 165536, "count": 65536}] and result["linger"] is True
    assert result["diff"]["before"] == {"exists": True, "subuid": [], "subgid": [], "linger": False}


def test_converged_user_runs_nothing(host):
    (host.etc / "subuid").write_text(SUBIDS + "core:165536:65536\n")
    (host.etc / "subgid").write_text(SUBIDS + "1000:300000:65536\n")  # by uid counts too
    (host.linger / "core").write_text("")
    fake = tools({})
    result = host({"name": "core"}, fake)
    assert result["changed"] is False and fake.calls == []
    assert result["subgid"] == [{"start": 300000, "count": 65536}]


def test_check_mode_predicts_and_changes_nothing(host):
    fake = tools({})
    result = host({"name": "core", "_ansible_check_mode": True}, fake)
    assert result["changed"] is True and fake.calls == []
    assert (host.etc / "subuid").read_text() == SUBIDS and not (host.linger / "core").exists()
    assert result["diff"]["after"]["subuid"] == [{"start": 165536, "count": 65536}]


def test_without_usermod_the_files_are_edited_atomically(host):
    fake = tools({LINGER: OK}, present=("loginctl",))
    result = host({"name": "core"}, fake)
    assert result["changed"] is True and fake.calls == [LINGER]
    assert (host.etc / "subuid").read_text() == SUBIDS + "core:165536:65536\n"
    assert (host.etc / "subgid").read_text() == SUBIDS + "core:165536:65536\n"


def test_missing_file_is_created(host):
    (host.etc / "subgid").unlink()
    fake = tools({LINGER: OK}, present=("loginctl",))
    host({"name": "core", "subgid_count": 1000}, fake)
    assert (host.etc / "subgid").read_text() == "core:100000:1000\n"
    assert oct((host.etc / "subgid").stat().st_mode & 0o777) == "0o644"


def test_login_defs_move_the_range(host):
    (host.etc / "login.defs").write_text("SUB_UID_MIN 500000\nSUB_GID_MIN 600000\n")
    answer = "usermod --add-subuids 500000-565535 --add-subgids 600000-665535 core"
    fake = tools({answer: OK})
    result = host({"name": "core", "linger": False}, fake)
    assert fake.calls == [answer] and result["linger"] is False


def test_short_range_is_topped_up(host):
    (host.etc / "subuid").write_text(SUBIDS + "core:165536:1000\n")
    (host.etc / "subgid").write_text(SUBIDS + "core:165536:65536\n")
    (host.linger / "core").write_text("")
    fake = tools({"usermod --add-subuids 166536-231071 core": OK})
    result = host({"name": "core"}, fake)
    assert fake.calls == ["usermod --add-subuids 166536-231071 core"]
    assert result["subuid"] == [{"start": 165536, "count": 1000}, {"start": 166536, "count": 64536}]


def test_create_counts_the_ranges_useradd_added(host):
    def useradd_spawn(argv, env, timeout, stdin, cwd):
        if argv[1:] == ["--create-home", "newbie"]:
            host.users["newbie"] = user("newbie", 1002)
            (host.etc / "subuid").write_text(SUBIDS + "newbie:165536:65536\n")
            (host.etc / "subgid").write_text(SUBIDS + "newbie:165536:65536\n")
        return fake_spawn(argv, env, timeout, stdin, cwd)

    fake = tools({"useradd --create-home newbie": OK, "loginctl enable-linger newbie": OK})
    fake_spawn = fake.spawn
    fake.spawn = useradd_spawn
    result = host({"name": "newbie", "create": True}, fake)
    assert fake.calls == ["useradd --create-home newbie", "loginctl enable-linger newbie"]
    assert result["created"] is True and result["uid"] == 1002 and result["subuid"] == [{"start": 165536, "count": 65536}]


def test_create_in_check_mode_predicts_without_a_uid(host):
    fake = tools({})
    result = host({"name": "newbie", "create": True, "_ansible_check_mode": True}, fake)
    assert result["changed"] is True and result["uid"] is None and result["runtime_dir"] is None
    assert result["diff"]["after"]["exists"] is True and fake.calls == []


def test_absent_removes_entries_by_name_and_uid_and_linger(host):
    (host.etc / "subuid").write_text(SUBIDS + "core:165536:65536\n1000:300000:10\n")
    (host.linger / "core").write_text("")
    fake = tools({"loginctl disable-linger core": OK})
    result = host({"name": "core", "state": "absent"}, fake)
    assert result["changed"] is True and fake.calls == ["loginctl disable-linger core"]
    assert (host.etc / "subuid").read_text() == SUBIDS and result["subuid"] == []


def test_absent_for_a_missing_user_cleans_entries_by_name(host):
    (host.etc / "subuid").write_text(SUBIDS + "ghost:165536:65536\n")
    fake = tools({})
    result = host({"name": "ghost", "state": "absent"}, fake)
    assert result["changed"] is True and fake.calls == [] and (host.etc / "subuid").read_text() == SUBIDS


def test_overlapping_ranges_are_warned_about(host):
    (host.etc / "subuid").write_text(SUBIDS + "bob:150000:65536\ncore:300000:65536\n")
    (host.etc / "subgid").write_text(SUBIDS + "core:300000:65536\n")
    (host.linger / "core").write_text("")
    result = host({"name": "core"}, tools({}))
    assert result["changed"] is False and "overlap" in str(result["warnings"])


BAD_INPUTS = [
    {},
    {"name": ""},
    {"name": "root"},
    {"name": "toor"},
    {"name": "Core"},
    {"name": "../core"},
    {"name": "core\nroot"},
    {"name": "co:re"},
    {"name": "x" * 33},
    {"name": "nobody-here"},
    {"name": "core", "subuid_count": 0},
    {"name": "core", "subuid_count": -1},
    {"name": "core", "subgid_count": 2**33},
    {"name": "core", "subuid_count": "many"},
    {"name": "core", "linger": "perhaps"},
    {"name": "core", "state": "gone"},
    {"name": "core", "create": "maybe"},
    {"name": "core", "frobnicate": True},
]


@pytest.mark.parametrize("args", BAD_INPUTS)
def test_bad_input_fails_before_any_command(host, args):
    fake = tools({})
    result = host(args, fake)
    assert result["failed"] is True and fake.calls == [] and (host.etc / "subuid").read_text() == SUBIDS


def test_malformed_subuid_file_fails_before_any_command(host):
    (host.etc / "subuid").write_text("garbage\n")
    fake = tools({})
    result = host({"name": "core"}, fake)
    assert result["failed"] is True and "line 1" in result["msg"] and fake.calls == []
