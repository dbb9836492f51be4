"""immutable.hosts.batch: several module calls in one process give each call's own result, diff and errors."""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak, flatpak_host, flatpak_override_module
from ansible_collections.immutable.hosts.plugins.modules import batch as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import FIXTURES, Tools, call_module

EDITOR = {"app": "org.test.Editor", "mode": "exact", "sockets": ["wayland"], "filesystems": ["xdg-documents"]}
HELLO = {"app": "org.test.Hello", "filesystems": ["home"]}


@pytest.fixture
def host(tmp_path, monkeypatch, capsys):
    """A system installation holding flatpak 1.16's override of org.test.Hello; no flatpak process may run."""
    (tmp_path / "overrides").mkdir()
    shutil.copy(FIXTURES / "flatpak" / "1.16.6" / "override-file.keyfile", tmp_path / "overrides" / "org.test.Hello")
    monkeypatch.setenv("FLATPAK_SYSTEM_DIR", str(tmp_path))
    fake = Tools({}, present=("flatpak",))
    monkeypatch.setattr(flatpak_host, "make_runner", fake.runner)

    def run(calls, check=False, target=module):
        args = {"calls": calls} if target is module else calls
        if check:
            args["_ansible_check_mode"] = True
        result = call_module(target, args, capsys)
        assert fake.calls == []
        return result

    run.overrides = tmp_path / "overrides"
    return run


def files(directory):
    return {path.name: path.read_text() for path in sorted(directory.iterdir())}


def test_check_mode_predicts_each_call_writes_nothing_and_heads_each_diff(host):
    before = files(host.overrides)
    calls = [{"module": "flatpak_override", "args": EDITOR}, {"module": "immutable.hosts.flatpak_override", "args": HELLO}]
    result = host(calls, check=True)
    assert result["changed"] is True
    assert files(host.overrides) == before
    assert [r["module"] for r in result["results"]] == ["immutable.hosts.flatpak_override"] * 2
    assert [r["item"] for r in result["results"]] == ["flatpak_override org.test.Editor", "flatpak_override org.test.Hello"]
    assert [r["changed"] for r in result["results"]] == [True, True]
    assert result["results"][0]["invocation"]["module_args"]["mode"] == "exact"
    assert [d["before_header"] for d in result["diff"]] == ["flatpak_override org.test.Editor", "flatpak_override org.test.Hello"]
    assert result["diff"][0]["after"] == {"sockets": ["wayland"], "filesystems": ["xdg-documents"]}


def test_each_call_returns_what_the_standalone_module_returns(host):
    alone = host(dict(HELLO, _ansible_check_mode=True), target=flatpak_override_module)
    batched = host([{"module": "flatpak_override", "args": HELLO}], check=True)["results"][0]
    for key in ("changed", "diff", "path", "override", "commands"):
        assert batched[key] == alone[key], key


def test_applies_in_order_then_is_converged(host):
    calls = [{"module": "flatpak_override", "args": EDITOR}, {"module": "flatpak_override", "args": HELLO, "label": "hello"}]
    result = host(calls)
    assert result["changed"] is True and [r["changed"] for r in result["results"]] == [True, True]
    assert flatpak.parse_override((host.overrides / "org.test.Editor").read_text())["context"]["sockets"] == {
        "wayland": "wayland"
    }
    assert result["results"][1]["item"] == "hello"
    again = host(calls)
    assert again["changed"] is False and again["diff"] == []
    assert [r["changed"] for r in again["results"]] == [False, False]


def test_invalid_arguments_of_a_later_call_change_nothing(host):
    before = files(host.overrides)
    calls = [
        {"module": "flatpak_override", "args": EDITOR},
        {"module": "flatpak_override", "args": {"app": "org.test.Hello", "sokets": ["x11"]}},
    ]
    result = host(calls)
    assert result["failed"] is True and result["changed"] is False
    assert "call 2 (flatpak_override org.test.Hello)" in result["msg"]
    assert "unsupported parameters: sokets" in result["msg"]
    assert files(host.overrides) == before


def test_wrong_type_and_unknown_module_are_refused_before_anything_runs(host):
    bad_type = host(
        [{"module": "flatpak_override", "args": EDITOR}, {"module": "quadlet", "args": {"name": "x", "started": "maybe"}}]
    )
    assert bad_type["failed"] is True and "call 2" in bad_type["msg"] and "started" in bad_type["msg"]
    unknown = host([{"module": "community.general.flatpak", "args": {}}])
    assert unknown["failed"] is True and "cannot run in a batch" in unknown["msg"]
    assert not (host.overrides / "org.test.Editor").exists()


def test_a_call_failing_on_the_host_stops_the_batch_and_says_what_ran(host, tmp_path):
    """A failure only the host can reveal (here an override that is a symbolic link) stops the batch there."""
    (tmp_path / "elsewhere").write_text("[Context]\n")
    (host.overrides / "org.test.Linked").symlink_to(tmp_path / "elsewhere")
    calls = [
        {"module": "flatpak_override", "args": EDITOR},
        {"module": "flatpak_override", "args": {"app": "org.test.Linked", "sockets": ["x11"]}},
        {"module": "flatpak_override", "args": HELLO},
    ]
    result = host(calls)
    assert result["failed"] is True
    assert result["msg"].startswith("flatpak_override org.test.Linked failed: ") and "is a symbolic link" in result["msg"]
    assert result["changed"] is True  # the first call was applied
    assert [r["item"] for r in result["results"]] == ["flatpak_override org.test.Editor", "flatpak_override org.test.Linked"]
    assert result["results"][1]["failed"] is True
    assert result["skipped_calls"] == ["flatpak_override org.test.Hello"]
    assert (host.overrides / "org.test.Editor").exists()
    assert "home:ro" in (host.overrides / "org.test.Hello").read_text()  # the third call did not run


@pytest.mark.parametrize(
    "bad",
    [
        {"module": "quadlet", "args": {"name": "../evil", "container": {"image": "a.io/b:c"}}},
        {"module": "flatpak_override", "args": {"app": "not an id", "sockets": ["x11"]}},
        {"module": "flatpak_override", "args": {"app": "org.test.X", "environment": {"A": "a\u2028b"}}},
        {"module": "quadlet", "args": {"name": "web", "container": {"image": "a.io/b:c", "environment": {"P": "50%"}}}},
        {"module": "rootless_user", "args": {"name": "no-such-user-here"}},
        {"module": "flatpak_override", "args": {"app": "org.test.X", "sockets": ["x11"], "user": "no-such-user-here"}},
    ],
)
def test_a_call_with_bad_input_anywhere_fails_the_batch_before_any_call_runs(host, bad):
    """Before: only argument specs were checked first, so [valid override, quadlet '../evil'] wrote the override."""
    before = files(host.overrides)
    result = host([{"module": "flatpak_override", "args": EDITOR}, bad])
    assert result["failed"] is True and result["msg"].startswith("call 2 (") and "so no call ran" in result["msg"]
    assert result.get("results") in (None, []) and files(host.overrides) == before
