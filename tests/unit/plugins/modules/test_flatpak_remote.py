"""immutable.hosts.flatpak_remote with flatpak answering from real 1.14/1.16 output."""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _remotes as remotes
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import FIXTURES, Tools, run_unit

REMOTES = (
    "flatpak remotes --system --show-disabled --columns=name:f,url:f,title:f,comment:f,priority:f,filter:f,collection:f,options:f"
)
URL = "file:///tmp/flatpak-capture/repo"


@pytest.fixture(params=["1.14.10", "1.16.6"])
def run(request, tmp_path, capsys):
    version = FIXTURES / "flatpak" / request.param
    (tmp_path / "repo").mkdir()
    shutil.copy(version / "flathub.trustedkeys.gpg", tmp_path / "repo" / "flathub.trustedkeys.gpg")

    def run(args, tools, **host):
        host = Host(runner=tools.runner(), environ={"FLATPAK_SYSTEM_DIR": str(tmp_path)}, **host)
        return run_unit(remotes.UNIT, args, host, capsys)

    run.out = lambda name: (version / name).read_text()
    run.key = version / "key.asc"
    run.fingerprint = (version / "key.fingerprint").read_text().strip()
    run.tmp = tmp_path
    return run


def tools(answers):
    return Tools(answers, present=("flatpak", "runuser"))


def test_fedora_flathub_is_reconciled_in_place_with_one_modify(run):
    modify = "flatpak remote-modify --system --no-filter --enable flathub"
    fake = tools({REMOTES: (0, run.out("remotes-system.txt"), ""), modify: (0, "", "")})
    args = {"name": "flathub", "url": URL, "no_filter": True, "gpg_key": str(run.key)}
    result = run(args, fake)
    assert result["changed"] is True and fake.calls == [REMOTES, modify]
    assert result["diff"]["before"]["enabled"] is False and result["diff"]["after"]["enabled"] is True
    assert result["diff"]["after"]["filter"] is None and result["remote"]["gpg_keys"] == [run.fingerprint]
    assert "BEGIN PGP" not in str(result)
    fake = tools({REMOTES: (0, run.out("remotes-system-reconciled.txt"), "")})
    again = run(args, fake)
    assert again["changed"] is False and fake.calls == [REMOTES]


def test_check_mode_runs_only_the_listing(run):
    fake = tools({REMOTES: (0, run.out("remotes-system.txt"), "")})
    result = run({"name": "flathub", "no_filter": True, "_ansible_check_mode": True}, fake)
    assert result["changed"] is True and fake.calls == [REMOTES]


def test_add_imports_the_key_and_a_failed_add_leaves_nothing_behind(run):
    fake = Tools({REMOTES: (0, run.out("remotes-system.txt"), "")}, present=("flatpak",))
    original = fake.spawn

    def spawn(argv, env, timeout, stdin, cwd):
        key = " ".join(argv[1:])
        if argv[1] == "remote-add":
            fake.calls.append("flatpak remote-add")
            assert any(arg.startswith("--gpg-import=") for arg in argv) and argv[-2:] == ["corp", "https://corp.example/repo/"]
            return 1, "", "error: GPG signatures found, but none are in trusted keyring\n"
        if key == "remote-delete --system --force corp":
            fake.calls.append("flatpak " + key)
            return 0, "", ""
        return original(argv, env, timeout, stdin, cwd)

    fake.spawn = spawn
    result = run({"name": "corp", "url": "https://corp.example/repo/", "gpg_key": run.key.read_text()}, fake)
    assert result["failed"] is True and "trusted keyring" in result["msg"]
    assert fake.calls == [REMOTES, "flatpak remote-add", "flatpak remote-delete --system --force corp"]


def test_add_from_flatpakrepo_file(run, tmp_path):
    repo = tmp_path / "corp.flatpakrepo"
    key = run.key.read_text()
    import base64

    from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _openpgp as openpgp

    blob = base64.b64encode(openpgp.dearmor(key)).decode()
    repo.write_text("[Flatpak Repo]\nTitle=Corp\nUrl=https://corp.example/repo/\nGPGKey=%s\n" % blob)
    seen = []
    fake = Tools({REMOTES: (0, run.out("remotes-system.txt"), "")}, present=("flatpak",))
    original = fake.spawn

    def spawn(argv, env, timeout, stdin, cwd):
        if argv[1] == "remote-add":
            seen.append(argv)
            return 0, "", ""
        return original(argv, env, timeout, stdin, cwd)

    fake.spawn = spawn
    result = run({"name": "corp", "flatpakrepo_url": str(repo)}, fake)
    assert result["changed"] is True and result["remote"]["title"] == "Corp"
    assert result["remote"]["gpg_keys"] == [run.fingerprint]
    argv = seen[0]
    assert argv[1:4] == ["remote-add", "--system", "--from"] and argv[-2] == "corp" and argv[-1].endswith(".flatpakrepo")
    assert "--title=Corp" in argv


def test_absent(run):
    delete = "flatpak remote-delete --system --force insecure"
    fake = tools({REMOTES: (0, run.out("remotes-system.txt"), ""), delete: (0, "", "")})
    assert run({"name": "insecure", "state": "absent"}, fake)["changed"] is True and fake.calls == [REMOTES, delete]
    fake = tools({REMOTES: (0, run.out("remotes-system.txt"), "")})
    assert run({"name": "nosuch", "state": "absent"}, fake)["changed"] is False


def test_other_user_runs_flatpak_through_runuser(run):
    import pwd

    entry = pwd.struct_passwd(("alice", "x", 1000, 1000, "", "/home/alice", "/bin/sh"))
    listing = "runuser -u alice -- /usr/bin/flatpak remotes --user --show-disabled " + REMOTES.split("--show-disabled ")[1]
    fake = tools({listing: (0, "", "")})
    result = run({"name": "flathub", "user": "alice", "state": "absent"}, fake, passwd={"alice": entry}, euid=0)
    assert result["changed"] is False and fake.calls == [listing]


BAD = [
    {},
    {"name": "flathub", "flatpakrepo_url": "http://dl.example/flathub.flatpakrepo"},
    {"name": "bad name"},
    {"name": "-x", "url": "https://x/"},
    {"name": "x", "url": "https://x/", "gpg_verify": False},
    {"name": "x", "url": "https://x/", "gpg_verify": False, "allow_insecure": True, "gpg_key": "/etc/hostname"},
    {"name": "x", "url": "ftp://x/"},
    {"name": "x", "url": "https://x/", "flatpakrepo_url": "https://x/x.flatpakrepo"},
    {"name": "x", "url": "https://x/", "filter": "/etc/f", "no_filter": True},
    {"name": "x", "url": "https://x/", "filter": "relative/filter"},
    {"name": "x", "url": "https://x/", "filter": "/nonexistent/filter"},
    {"name": "x", "url": "https://x/", "gpg_key": "/nonexistent/key.gpg"},
    {"name": "x", "url": "https://x/", "gpg_key": "not a key and not a path"},
    {
        "name": "x",
        "url": "https://x/",
        "gpg_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!\n-----END PGP PUBLIC KEY BLOCK-----",
    },
    {"name": "x", "url": "https://x/", "priority": -1},
    {"name": "x", "url": "https://x/", "collection_id": "not-an-id"},
    {"name": "x", "url": "https://x/", "gpg_verify": False, "allow_insecure": True, "collection_id": "org.x.Repo"},
    {"name": "x", "url": "https://x/", "title": "two\nlines"},
    {"name": "x", "flatpakrepo_url": "/nonexistent.flatpakrepo"},
    {"name": "x", "flatpakrepo_url": "relative.flatpakrepo"},
    {"name": "x", "url": "https://x/", "state": "gone"},
    {"name": "x", "url": "https://x/", "user": "no-such-user-here"},
    {"name": "x", "url": "https://x/", "user": "root", "scope": "system"},
    {"name": "x", "url": "https://x/", "installation": "extra", "scope": "user"},
    {"name": "x", "url": "https://x/", "scope": "everywhere"},
]


@pytest.mark.parametrize("args", BAD)
def test_bad_input_fails_before_anything_runs(run, args):
    fake = tools({})
    result = run(args, fake)
    assert result["failed"] is True and fake.calls == [], result
