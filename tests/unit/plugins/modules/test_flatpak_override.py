"""immutable.hosts.flatpak_override on real override keyfiles written by flatpak 1.14/1.16."""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak, flatpak_host
from ansible_collections.immutable.hosts.plugins.module_utils import flatpak_override_module as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import FIXTURES, Tools, call_module


@pytest.fixture(params=["1.14.10", "1.16.6"])
def run(request, tmp_path, monkeypatch, capsys):
    version = FIXTURES / "flatpak" / request.param
    (tmp_path / "overrides").mkdir()
    shutil.copy(version / "override-file.keyfile", tmp_path / "overrides" / "org.test.Hello")
    monkeypatch.setenv("FLATPAK_SYSTEM_DIR", str(tmp_path))
    fake = Tools({}, present=("flatpak",))

    def run(args):
        monkeypatch.setattr(flatpak_host, "make_runner", fake.runner)
        result = call_module(module, args, capsys)
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
    written = flatpak.parse_override(run.file.read_text())
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
