"""immutable.hosts.flatpak with flatpak answering from real 1.14/1.16 output."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _apps as apps
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import FIXTURES, Tools, run_unit

LIST = "flatpak list --system --columns=application:f,branch:f,arch:f,origin:f,ref:f,active:f,runtime:f,installation:f,options:f"
REMOTES = (
    "flatpak remotes --system --show-disabled --columns=name:f,url:f,title:f,comment:f,priority:f,filter:f,collection:f,options:f"
)
UPDATES = "flatpak remote-ls --system --updates --columns=application:f,branch:f,arch:f,origin:f,ref:f,commit:f testrepo"
INSTALL = "flatpak install --system --noninteractive -y"


@pytest.fixture(params=["1.14.10", "1.16.6"])
def run(request, tmp_path, capsys):
    version = FIXTURES / "flatpak" / request.param

    def run(args, fake):
        host = Host(runner=fake.runner(), environ={"FLATPAK_SYSTEM_DIR": str(tmp_path)})
        return run_unit(apps.UNIT, dict({"arch": "x86_64"}, **args), host, capsys)

    run.out = lambda name: (version / name).read_text()
    run.tmp = tmp_path
    return run


def tools(answers):
    return Tools(answers, present=("flatpak", "runuser"))


def test_converged_host_costs_one_listing(run):
    fake = tools({LIST: (0, run.out("list-system.txt"), "")})
    names = ["org.test.Hello//stable", "org.test.Hello//beta", "runtime/org.test.Platform/x86_64/1"]
    result = run({"name": names, "remote": "testrepo"}, fake)
    assert result["changed"] is False and fake.calls == [LIST]


def test_latest_converged_costs_two(run):
    fake = tools({LIST: (0, run.out("list-system.txt"), ""), UPDATES: (0, run.out("remote-ls-updates-none.txt"), "")})
    result = run({"name": ["org.test.Hello//stable"], "remote": "testrepo", "state": "latest"}, fake)
    assert result["changed"] is False and fake.calls == [LIST, UPDATES]


def test_latest_updates_the_outdated_ref(run):
    update = INSTALL + " --or-update testrepo app/org.test.Hello/x86_64/stable"
    fake = tools(
        {LIST: (0, run.out("list-system.txt"), ""), UPDATES: (0, run.out("remote-ls-updates.txt"), ""), update: (0, "", "")}
    )
    result = run({"name": ["org.test.Hello//stable"], "remote": "testrepo", "state": "latest"}, fake)
    assert result["changed"] is True and fake.calls == [LIST, UPDATES, update]
    assert result["updated"] == ["app/org.test.Hello/x86_64/stable"]
    assert result["diff"]["before"]["outdated"] == ["app/org.test.Hello/x86_64/stable"]


def test_missing_refs_install_in_one_call_after_checking_the_remote(run):
    install = INSTALL + " testrepo org.test.A0/x86_64/ org.test.A1/x86_64/ org.test.A2/x86_64/"
    fake = tools(
        {LIST: (0, run.out("list-system.txt"), ""), REMOTES: (0, run.out("remotes-system.txt"), ""), install: (0, "", "")}
    )
    result = run({"name": ["org.test.A0", "org.test.A1", "org.test.A2"], "remote": "testrepo"}, fake)
    assert result["changed"] is True and fake.calls == [LIST, REMOTES, install]
    assert result["installed"] == ["org.test.A0/x86_64/", "org.test.A1/x86_64/", "org.test.A2/x86_64/"]


def test_disabled_remote_fails_before_installing(run):
    fake = tools({LIST: (0, run.out("list-system.txt"), ""), REMOTES: (0, run.out("remotes-system.txt"), "")})
    result = run({"name": ["org.test.New"], "remote": "flathub"}, fake)
    assert result["failed"] is True and "disabled" in result["msg"] and fake.calls == [LIST, REMOTES]
    result = run(
        {"name": ["org.test.New"], "remote": "nosuch"},
        tools({LIST: (0, run.out("list-system.txt"), ""), REMOTES: (0, run.out("remotes-system.txt"), "")}),
    )
    assert result["failed"] is True and "not configured" in result["msg"]


def test_exclusive_check_mode_predicts_and_runs_only_the_listing(run):
    fake = tools({LIST: (0, run.out("list-system.txt"), "")})
    result = run({"name": ["org.test.Hello//stable"], "remote": "testrepo", "exclusive": True, "_ansible_check_mode": True}, fake)
    assert result["changed"] is True and fake.calls == [LIST]
    assert result["removed"] == ["app/org.test.Hello/x86_64/beta", "app/org.test.Other-App/x86_64/stable"]
    assert "runtime/org.test.Platform/x86_64/1" in result["diff"]["after"]["refs"]


def test_absent_is_one_uninstall(run):
    uninstall = "flatpak uninstall --system --noninteractive -y --no-related app/org.test.Other-App/x86_64/stable"
    fake = tools({LIST: (0, run.out("list-system.txt"), ""), uninstall: (0, "", "")})
    result = run({"name": ["org.test.Other-App"], "state": "absent", "no_related": True}, fake)
    assert result["changed"] is True and fake.calls == [LIST, uninstall]


def test_uninstall_unused_is_skipped_when_nothing_is_unused(run):
    (run.tmp / "repo").mkdir()
    (run.tmp / "repo" / "config").write_text("[core]\nxa.pinned=runtime/org.test.Platform/x86_64/1\n")
    fake = tools({LIST: (0, run.out("list-system.txt"), "")})
    result = run({"name": ["org.test.Hello//stable"], "remote": "testrepo", "uninstall_unused": True}, fake)
    assert result["changed"] is False and fake.calls == [LIST]


BAD = [
    {},
    {"name": []},
    {"name": ["firefox"], "remote": "flathub"},
    {"name": ["org.mozilla"], "remote": "flathub"},
    {"name": ["org.1x.App"], "remote": "flathub"},
    {"name": ["org.x.App//"], "remote": "flathub"},
    {"name": ["app/org.x.App"], "remote": "flathub"},
    {"name": ["https://x/org.x.App.flatpakref"], "remote": "flathub"},
    {"name": ["org.x.App", "org.x.App"], "remote": "flathub"},
    {"name": ["org.x.App"]},
    {"name": ["org.x.App"], "state": "latest"},
    {"name": ["org.x.App"], "remote": "bad remote"},
    {"name": ["org.x.App"], "state": "absent", "exclusive": True},
    {"name": ["org.x.App"], "remote": "flathub", "arch": "x86 64"},
    {"name": ["org.x.App"], "remote": "flathub", "state": "installed"},
    {"name": ["org.x.App"], "remote": "flathub", "user": "no-such-user-here"},
    {"name": ["org.x.App"], "remote": "flathub", "installation": "../etc"},
    {"name": ["org.x.App"], "remote": "flathub", "installation": "extra", "user": "root"},
    {"name": ["org.x.App//be ta"], "remote": "flathub"},
]


@pytest.mark.parametrize("args", BAD)
def test_bad_input_fails_before_anything_runs(run, args):
    fake = tools({})
    result = run(args, fake)
    assert result["failed"] is True and fake.calls == [], result
