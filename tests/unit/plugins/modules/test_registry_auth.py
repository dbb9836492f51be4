"""immutable.hosts.registry_auth on real files: /etc/ostree/auth.json and a user's ~/.config/containers/auth.json."""

from __future__ import annotations

import base64
import json
import os
import pwd

import pytest

from ansible_collections.immutable.hosts.plugins.modules import registry_auth as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import run_file_unit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes files owned by another user: needs root")

UID = 1000
SECRET = "s3cr3t-Token"
# What `skopeo login` leaves (tab-indented), for another registry.
SKOPEO_LOGIN = '{\n\t"auths": {\n\t\t"quay.io": {\n\t\t\t"auth": "%s"\n\t\t}\n\t}\n}' % base64.b64encode(b"robot:other").decode()


@pytest.fixture
def run(tmp_path, capsys):
    (tmp_path / "etc/ostree").mkdir(parents=True)
    home = tmp_path / "home/core"
    home.mkdir(parents=True)
    os.chown(home, UID, UID)
    users = {"core": pwd.struct_passwd(("core", "x", UID, UID, "", "/home/core", "/bin/bash"))}

    def run(args, check=False):
        return run_file_unit(module.UNIT, args, tmp_path, capsys, check, passwd=users)

    run.root = tmp_path
    run.home = home
    return run


def stored(path) -> dict:
    return json.loads(path.read_text())["auths"]


def test_system_credentials_converge_keep_others_and_never_show_the_secret(run, capsys):
    path = run.root / "etc/ostree/auth.json"
    path.write_text(SKOPEO_LOGIN)
    args = {"registry": "registry.lab:5001", "username": "lab", "password": SECRET}
    checked = run(args, check=True)
    assert checked["changed"] is True and checked["secret_changed"] is True and path.read_text() == SKOPEO_LOGIN
    first = run(args)
    assert first["changed"] is True and first["diff"] == checked["diff"]
    auths = stored(path)
    assert base64.b64decode(auths["registry.lab:5001"]["auth"]).decode() == "lab:" + SECRET
    assert auths["quay.io"] == json.loads(SKOPEO_LOGIN)["auths"]["quay.io"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert first["diff"]["after"]["auths"]["registry.lab:5001"] == {"username": "lab", "password": "(hidden)"}
    second = run(args)
    assert second["changed"] is False and second["secret_changed"] is False
    rotated = run({**args, "password": SECRET + "2"})
    assert rotated["changed"] is True and rotated["diff"]["after"]["auths"]["registry.lab:5001"]["password"] == "(changed)"
    for result in (checked, first, second, rotated):
        assert SECRET not in json.dumps(result) and base64.b64encode(("lab:" + SECRET).encode()).decode() not in json.dumps(
            result
        )
    removed = run({"registry": "registry.lab:5001", "state": "absent"})
    assert removed["changed"] is True and list(stored(path)) == ["quay.io"]
    assert run({"registry": "registry.lab:5001", "state": "absent"})["changed"] is False


def test_a_users_file_is_created_as_the_user_and_never_through_a_link(run):
    args = {"registry": "ghcr.io/example", "username": "bot", "password": SECRET, "scope": "user", "user": "core"}
    assert run(args)["changed"] is True
    path = run.home / ".config/containers/auth.json"
    assert path.stat().st_uid == UID and oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((run.home / ".config").stat().st_mode & 0o777) == "0o700" and (run.home / ".config").stat().st_uid == UID
    assert run(args)["changed"] is False
    # The user swaps the directory for a link to root's files: nothing is written there.
    os.rename(path.parent, run.home / "moved")
    (run.root / "etc/secret").mkdir()
    os.symlink(run.root / "etc/secret", path.parent)
    linked = run(args)
    assert linked["failed"] is True and "link" in linked["msg"] and not os.listdir(run.root / "etc/secret")


@pytest.mark.parametrize(
    "args, message",
    [
        ({"registry": "https://registry.example.com", "username": "u", "password": "pw-secret"}, "is a registry host"),
        ({"registry": "Registry.Example.com/Team", "username": "u", "password": "pw-secret"}, "is a registry host"),
        ({"registry": "r.example.com", "username": "a:b", "password": "pw-secret"}, "has no ':'"),
        ({"registry": "r.example.com", "username": "u", "password": "pw\u2028x"}, "U+2028"),
        ({"registry": "r.example.com", "username": "u"}, "missing: password"),
        ({"registry": "r.example.com", "username": "u", "password": "pw-secret", "scope": "user"}, "missing: user"),
        (
            {"registry": "r.example.com", "username": "u", "password": "pw-secret", "scope": "user", "user": "nobody-here"},
            "does not exist",
        ),
        ({"registry": "r.example.com", "username": "u", "password": "pw-secret", "user": "core"}, "user is for scope=user"),
        ({"registry": "r.example.com", "username": "u", "password": "pw-secret", "path": "auth.json"}, "absolute path"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(run, args, message):
    result = run(args)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert not (run.root / "etc/ostree/auth.json").exists() and not (run.home / ".config").exists()
    assert "pw\u2028x" not in json.dumps(result, ensure_ascii=False)


def test_an_unreadable_file_is_refused(run):
    path = run.root / "etc/ostree/auth.json"
    path.write_text("{not json")
    result = run({"registry": "r.example.com", "username": "u", "password": "pw-secret"})
    assert result["failed"] is True and "is not valid JSON" in result["msg"] and path.read_text() == "{not json"
