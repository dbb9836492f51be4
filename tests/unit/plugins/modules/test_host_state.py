"""immutable.hosts.host_state: a whole host (an OSTree sysroot, a Flatpak installation, a rootless user with a unit and a
secret) under tmp_path, with every tool answering from a table of real outputs."""

from __future__ import annotations

import copy
import json
import os
import pwd
import shutil

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils import _host_state as host_state
from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import (
    FIXTURES,
    Tools,
    fixture_text,
    make_sysroot,
    run_unit,
)
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.test_image_policy import FEDORA_POLICY

BOOTED = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
ROLLBACK = "7a22d0feb18d647d7b3598b1ac006c1d27d1202303fe7118628bc4b8e2ecb74f"
PLAIN = "rpm-ostree-status-plain-silverblue.json"
STATUS = "rpm-ostree status --json"
LIST = "flatpak list --system --columns=application:f,branch:f,arch:f,origin:f,ref:f,active:f,runtime:f,installation:f,options:f"
AS_CORE = "runuser -u core -- env XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus "
SHOW = (
    AS_CORE
    + "systemctl --user show --property=LoadState,ActiveState,SubState,NeedDaemonReload,FragmentPath,SourcePath web.service"
)
INSPECT = AS_CORE + "podman secret inspect --showsecret --format {{.SecretData}}|end db"
UNIT_PATH = "/home/core/.config/containers/systemd/web.container"
WEB = "[Container]\nImage=localhost/bb:latest\nSecret=db,type=env,target=DB_PASSWORD\n"
ACTIVE = (
    0,
    "LoadState=loaded\nActiveState=active\nSubState=running\nNeedDaemonReload=no\n"
    "FragmentPath=/run/user/1000/systemd/generator/web.service\nSourcePath=%s\n" % UNIT_PATH,
    "",
)
OK = (0, "", "")
UID = 1000


def status_with(**changes) -> str:
    """The plain Silverblue status with a staged deployment on top, changed as given."""
    doc = json.loads(fixture_text(PLAIN))
    staged = copy.deepcopy(doc["deployments"][0])
    staged.update({"booted": False, "staged": True, "serial": 1, "id": staged["id"][:-1] + "1"}, **changes)
    doc["deployments"].insert(0, staged)
    return json.dumps(doc)


@pytest.fixture
def run(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("a user's files with their owner: needs root")
    make_sysroot(tmp_path, [(BOOTED, 0, "root=UUID=6f3b rw rhgb quiet"), (ROLLBACK, 0, "root=UUID=6f3b rw")])
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/rpm-ostreed.conf").write_text("[Daemon]\nAutomaticUpdatePolicy=stage\n")
    (tmp_path / "etc/subuid").write_text("core:100000:65536\n")
    (tmp_path / "etc/subgid").write_text("core:100000:65536\n")
    (tmp_path / "var/lib/systemd/linger").mkdir(parents=True)
    (tmp_path / "var/lib/systemd/linger/core").write_text("")
    (tmp_path / "var/lib/flatpak/overrides").mkdir(parents=True)
    shutil.copy(FIXTURES / "flatpak/1.16.6/override-file.keyfile", tmp_path / "var/lib/flatpak/overrides/org.test.Hello")
    units = tmp_path / "home/core/.config/containers/systemd"
    units.mkdir(parents=True)
    (units / "web.container").write_text(WEB)
    for path in [tmp_path / "home/core", *(tmp_path / "home/core").rglob("*")]:
        os.chown(path, UID, UID)
    (tmp_path / "run/user/1000/systemd").mkdir(parents=True)
    (tmp_path / "run/user/1000/systemd/private").write_text("")
    users = {"core": pwd.struct_passwd(("core", "x", UID, UID, "", "/home/core", "/bin/bash"))}

    def run(document, answers, check=False):
        tools = Tools(answers, present=("rpm-ostree", "ostree", "systemctl", "flatpak", "runuser", "podman", "useradd"))
        host = Host(runner=tools.runner(), root=str(tmp_path), passwd=users, euid=0, environ={})
        args = dict(document, _ansible_check_mode=check)
        return run_unit(host_state.UNIT, args, host, capsys), tools.calls

    run.root = tmp_path
    run.users = users
    return run


CONVERGED = {
    "os": {
        "kargs": [{"args": ["rw", "quiet"]}, {"args": ["nosmt"], "state": "absent"}],
        "update_policy": {"policy": "stage"},
    },
    "flatpak": [
        {
            "scope": "system",
            "apps": [
                {"name": ["org.test.Hello//stable"], "remote": "testrepo", "arch": "x86_64"},
                {"name": ["runtime/org.test.Platform/x86_64/1"], "remote": "testrepo"},
            ],
            "overrides": [{"app": "org.test.Other-App", "state": "absent"}],
        }
    ],
    "users": [{"name": "core", "secrets": [{"name": "db", "data": "pw"}], "quadlets": [{"name": "web", "content": WEB}]}],
    "facts": True,
}
CONVERGED_READS = {
    STATUS: (0, fixture_text(PLAIN), ""),
    LIST: (0, (FIXTURES / "flatpak/1.16.6/list-system.txt").read_text(), ""),
    INSPECT: (0, "pw|end\n", ""),
    SHOW: ACTIVE,
}


def test_a_converged_host_costs_one_read_per_tool(run):
    result, calls = run(CONVERGED, CONVERGED_READS)
    assert result["changed"] is False, result
    assert calls == [STATUS, LIST, INSPECT, SHOW]  # two kargs entries, two app entries, the facts: one read each
    modules = [entry["module"] for entry in result["resources"]]
    assert modules == [
        "immutable.hosts.kargs",
        "immutable.hosts.kargs",
        "immutable.hosts.update_policy",
        "immutable.hosts.rootless_user",
        "immutable.hosts.flatpak",
        "immutable.hosts.flatpak",
        "immutable.hosts.flatpak_override",
        "immutable.hosts.podman_secret",
        "immutable.hosts.quadlet",
    ]
    assert all(entry["changed"] is False for entry in result["resources"])
    assert result["reboot_required"] is False and result["reboot_reasons"] == []
    facts = result["ansible_facts"]["ostree"]
    assert facts["booted"]["checksum"] == BOOTED and facts["hardware"]["page_size"] > 0
    assert result["resources"][7]["args"] == {"name": "db", "user": "core", "state": "present"}
    assert "pw" not in json.dumps(result["resources"][7])


def test_a_rebase_onto_a_ref_layers_the_packages_in_the_same_transaction(run):
    rebase = "rpm-ostree rebase --install=htop fedora:fedora/42/x86_64/silverblue"
    kargs = "rpm-ostree kargs --unchanged-exit-77 --append-if-missing=preempt=full"
    rebased = status_with(origin="fedora:fedora/42/x86_64/silverblue", **{"requested-packages": ["htop"]})
    document = {
        "os": {
            "rebase": {"ref": "fedora:fedora/42/x86_64/silverblue"},
            "packages": {"name": ["htop"]},
            "kargs": [{"args": ["preempt=full"]}],
        }
    }
    answers = {STATUS: [(0, fixture_text(PLAIN), ""), (0, rebased, "")], rebase: OK, kargs: OK, "rpm-ostree kargs": OK}
    result, calls = run(document, answers)
    mutating = [call for call in calls if call.startswith("rpm-ostree") and call not in (STATUS, "rpm-ostree kargs")]
    assert mutating == [rebase, kargs], calls
    assert [entry["changed"] for entry in result["resources"]] == [True, False, True]
    assert result["resources"][0]["installed"] == ["htop"]
    assert result["reboot_required"] is True and "origin-changed" in result["reboot_reasons"]


def test_check_mode_reports_every_resource_and_changes_nothing(run):
    document = copy.deepcopy(CONVERGED)
    document["os"]["kargs"] = [{"args": ["preempt=full"]}]
    document["users"][0]["quadlets"][0]["content"] = WEB + "Environment=A=1\n"
    result, calls = run(document, CONVERGED_READS, check=True)
    assert result["changed"] is True and calls == [STATUS, LIST, INSPECT, SHOW]
    changed = [entry["resource"] for entry in result["resources"] if entry["changed"]]
    assert changed == ["kargs", "quadlet web (user=core)"]
    assert (run.root / UNIT_PATH.lstrip("/")).read_text() == WEB
    headers = [diff["before_header"] for diff in result["diff"]]
    assert headers == ["kargs", UNIT_PATH]
    assert result["reboot_required"] is True and result["reboot_reasons"] == ["kargs-changed"]


def test_a_changed_secret_restarts_the_running_unit_that_reads_it(run):
    create = AS_CORE + "podman secret create --replace db -"
    restart = AS_CORE + "systemctl --user restart web.service"
    unshare = AS_CORE + "podman unshare true"  # the user's namespace exists before any service of the user starts
    document = {
        "users": [{"name": "core", "secrets": [{"name": "db", "data": "new"}], "quadlets": [{"name": "web", "content": WEB}]}]
    }
    result, calls = run(document, {INSPECT: (0, "old|end\n", ""), create: OK, SHOW: ACTIVE, unshare: OK, restart: OK})
    assert calls == [INSPECT, create, SHOW, unshare, restart]
    assert result["resources"][-1]["actions"] == ["restart"] and result["changed"] is True
    # in check mode the restart is predicted the same way
    result, calls = run(document, {INSPECT: (0, "old|end\n", ""), SHOW: ACTIVE}, check=True)
    assert calls == [INSPECT, SHOW] and result["resources"][-1]["actions"] == ["restart"]


def test_bad_input_anywhere_fails_before_anything_runs(run):
    document = copy.deepcopy(CONVERGED)
    document["flatpak"][0]["overrides"].append({"app": "not an id"})
    result, calls = run(document, {})
    assert result["failed"] is True and calls == []
    assert result["msg"].startswith("flatpak_override not an id: ") and "not a valid flatpak application ID" in result["msg"]


def test_an_option_a_unit_does_not_take_is_refused_by_the_schema(run):
    document = {"users": [{"name": "core", "quadlets": [{"name": "web", "content": WEB, "frobnicate": 1}]}]}
    result, calls = run(document, {})
    assert result["failed"] is True and "frobnicate" in result["msg"] and calls == []


def test_a_failure_stops_the_run_and_says_what_ran_before(run):
    document = copy.deepcopy(CONVERGED)
    answers = dict(CONVERGED_READS)
    answers[INSPECT] = (125, "", "Error: unknown flag: --showsecret\n")
    result, calls = run(document, answers)
    assert result["failed"] is True and result["msg"].startswith("podman_secret db (user=core): ")
    assert [entry.get("failed", False) for entry in result["resources"]][-2:] == [False, True]
    assert calls == [STATUS, LIST, INSPECT]  # the quadlet never ran


def test_a_user_the_document_creates_has_its_units_set_up_after_it(run):
    document = {
        "users": [
            {"name": "newbie", "create": True, "linger": False, "quadlets": [{"name": "web", "content": WEB}]},
        ]
    }
    result, calls = run(document, {}, check=True)
    assert result["changed"] is True and calls == []
    assert [entry["changed"] for entry in result["resources"]] == [True, True]
    assert "created by this run" in result["resources"][1]["msg"]


def test_the_schema_is_the_units_own():
    spec = host_state.ARGUMENT_SPEC
    assert spec["users"]["options"]["quadlets"]["options"]["content"] == {"type": "str"}
    assert spec["users"]["options"]["secrets"]["options"]["data"]["no_log"] is True
    assert "user" not in spec["users"]["options"]["quadlets"]["options"]
    assert "install" not in spec["os"]["options"]["rebase"]["options"]
    assert spec["os"]["options"]["rebase"]["mutually_exclusive"] == [("ref", "image")]


def test_apps_that_differ_only_in_their_refs_are_one_transaction(run):
    install = "flatpak install --system --noninteractive -y testrepo org.test.New/x86_64/ org.test.Other/x86_64/"
    remotes = (
        "flatpak remotes --system --show-disabled "
        "--columns=name:f,url:f,title:f,comment:f,priority:f,filter:f,collection:f,options:f"
    )
    document = {
        "flatpak": [
            {
                "scope": "system",
                "apps": [
                    {"name": "org.test.New", "remote": "testrepo", "arch": "x86_64"},
                    {"name": "org.test.Other", "remote": "testrepo", "arch": "x86_64"},
                ],
            }
        ]
    }
    answers = {
        LIST: (0, (FIXTURES / "flatpak/1.16.6/list-system.txt").read_text(), ""),
        remotes: (0, (FIXTURES / "flatpak/1.16.6/remotes-system.txt").read_text(), ""),
        install: OK,
    }
    result, calls = run(document, answers)
    assert len(result["resources"]) == 1 and calls.count(install) == 1
    assert result["resources"][0]["installed"] == ["org.test.New/x86_64/", "org.test.Other/x86_64/"]


def test_exclusive_apps_from_two_remotes_are_refused_before_anything_runs(run):
    document = {
        "flatpak": [
            {
                "scope": "system",
                "apps_exclusive": True,
                "apps": [{"name": "org.test.A", "remote": "one"}, {"name": "org.test.B", "remote": "two"}],
            }
        ]
    }
    result, calls = run(document, {})
    assert result["failed"] is True and "from one remote" in result["msg"] and calls == []


def test_installation_options_apply_to_its_items():
    place = {
        "apps_latest": True,
        "apps_exclusive": True,
        "uninstall_unused": True,
        "apps": [
            {"name": ["org.test.A"], "remote": "r", "state": "present", "arch": None, "no_related": False},
            {"name": ["org.test.B"], "remote": None, "state": "absent", "arch": None, "no_related": False},
        ],
    }
    groups = host_state.app_groups(place)
    assert [(g["state"], g["exclusive"], g["uninstall_unused"]) for g in groups] == [
        ("latest", True, True),
        ("absent", False, True),
    ]


def test_an_override_without_a_mode_takes_the_installations():
    document = {
        "flatpak": [
            {
                "scope": "system",
                "overrides_mode": "exact",
                "overrides": [{"app": "org.test.A", "mode": None}, {"app": "org.test.B", "mode": "merge"}],
            }
        ]
    }
    found = host_state.resources(document)
    assert [(r.params["app"], r.params["mode"]) for r in found] == [("org.test.A", "exact"), ("org.test.B", "merge")]


def test_system_and_user_units_and_secrets_converge_after_every_user():
    document = {
        "users": [{"name": "core", "secrets": [{"name": "s"}], "quadlets": [{"name": "u"}]}],
        "secrets": [{"name": "root-secret", "user": None}, {"name": "core-secret", "user": "core"}],
        "quadlets": [{"name": "system-unit", "user": None}],
        "os": {"kargs": [{"args": ["quiet"]}]},
    }
    order = [
        (r.module, r.params.get("name") or r.params.get("args"), r.params.get("user")) for r in host_state.resources(document)
    ]
    assert order == [
        ("kargs", ["quiet"], None),
        ("rootless_user", "core", None),
        ("podman_secret", "root-secret", None),
        ("podman_secret", "core-secret", "core"),
        ("podman_secret", "s", "core"),
        ("quadlet", "system-unit", None),
        ("quadlet", "u", "core"),
    ]


def test_the_services_of_a_users_units_are_read_with_one_systemctl_call(run):
    both = SHOW.replace("web.service", "web.service db.service")
    inactive_db = "LoadState=not-found\nActiveState=inactive\nSubState=dead\nNeedDaemonReload=no\nFragmentPath=\nSourcePath=\n"
    document = {"users": [{"name": "core", "quadlets": [{"name": "web", "content": WEB}, {"name": "db", "content": WEB}]}]}
    result, calls = run(document, {both: (0, ACTIVE[1] + "\n" + inactive_db, "")}, check=True)
    assert calls == [both], calls
    web, db = result["resources"][1:]
    assert web["changed"] is False and web["active"] is True
    assert db["changed"] is True and db["actions"] == ["write", "daemon-reload", "start"]


def test_a_warning_names_its_resource(run):
    document = {"os": {"rebase": {"image": "quay.io/fedora/fedora-silverblue:42", "signature": "unverified"}}}
    result, calls = run(document, {STATUS: (0, fixture_text(PLAIN), "")}, check=True)
    assert result["changed"] is True and calls == [STATUS]
    texts = [w if isinstance(w, str) else w.get("event", {}).get("msg", "") for w in result["warnings"]]
    assert len(texts) == 1 and texts[0].startswith("rebase quay.io/fedora/fedora-silverblue:42: "), texts
    assert "followed unverified" in texts[0] and result["resources"][0]["warnings"] == [texts[0].split(": ", 1)[1]]


def test_check_mode_installs_apps_from_a_remote_the_same_document_adds(run):
    remotes = (
        "flatpak remotes --system --show-disabled "
        "--columns=name:f,url:f,title:f,comment:f,priority:f,filter:f,collection:f,options:f"
    )
    (run.root / "etc/pki").mkdir(parents=True)
    shutil.copy(FIXTURES / "flatpak/1.16.6/key.asc", run.root / "etc/pki/new.asc")
    document = {
        "flatpak": [
            {
                "scope": "system",
                "remotes": [{"name": "newrepo", "url": "https://repo.example/flatpak/", "gpg_key": "/etc/pki/new.asc"}],
                "apps": [{"name": "org.test.New", "remote": "newrepo", "arch": "x86_64"}],
            }
        ]
    }
    answers = {
        LIST: (0, (FIXTURES / "flatpak/1.16.6/list-system.txt").read_text(), ""),
        remotes: (0, (FIXTURES / "flatpak/1.16.6/remotes-system.txt").read_text(), ""),
    }
    result, calls = run(document, answers, check=True)
    assert result["changed"] is True and "failed" not in result, result
    assert calls == [remotes, LIST]  # reads only: nothing added, nothing installed
    remote, apps = result["resources"]
    assert remote["diff"]["before"] == {"state": "absent"} and remote["remote"]["url"] == "https://repo.example/flatpak/"
    assert apps["installed"] == ["org.test.New/x86_64/"]

    absent = copy.deepcopy(document)
    absent["flatpak"][0]["remotes"] = [{"name": "testrepo", "state": "absent"}]
    absent["flatpak"][0]["apps"][0]["remote"] = "testrepo"
    result, calls = run(absent, answers, check=True)
    assert result["failed"] is True and "remote testrepo is not configured" in result["msg"], result


# --- trust and sources before what needs them -------------------------------------------------------------------------

SIGNED = "quay.io/fedora/fedora-silverblue:42"
COSIGN_KEY = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEkZ8ShgDyTi1gbuAA\n-----END PUBLIC KEY-----\n"
TRUST = [
    {"type": "reject"},
    {"scope": "", "transport": "containers-storage", "type": "insecureAcceptAnything"},
    {"scope": "quay.io/fedora", "key": COSIGN_KEY},
]


@pytest.fixture
def stock_policy(run):
    (run.root / "etc/containers").mkdir(parents=True)
    (run.root / "etc/containers/policy.json").write_text(FEDORA_POLICY)
    return run


def test_a_check_plans_the_signed_rebase_against_the_trust_the_document_installs(stock_policy):
    run = stock_policy
    untrusted = {"os": {"rebase": {"image": SIGNED}}}
    result, _calls = run(untrusted, {STATUS: (0, fixture_text(PLAIN), "")}, check=True)
    assert result["failed"] is True and "no signature policy for %s" % SIGNED in result["msg"], result

    trusted = {"os": {"trust": TRUST, "rebase": {"image": SIGNED}}}
    result, calls = run(trusted, {STATUS: (0, fixture_text(PLAIN), "")}, check=True)
    assert "failed" not in result and result["changed"] is True, result.get("msg")
    assert calls == [STATUS]
    assert [entry["resource"] for entry in result["resources"]] == [
        "image_policy default",
        'image_policy "" (transport=containers-storage)',
        "image_policy quay.io/fedora",
        "rebase %s" % SIGNED,
    ]
    assert result["resources"][3]["origin"] == "ostree-image-signed:docker://" + SIGNED
    assert (run.root / "etc/containers/policy.json").read_text() == FEDORA_POLICY
    assert not (run.root / "etc/containers/registries.d").exists() and not (run.root / "etc/pki/containers").exists()
    assert result["reboot_reasons"] == ["origin-changed"]


def test_trust_is_written_before_the_signed_rebase_runs(stock_policy):
    run = stock_policy
    rebase = "rpm-ostree rebase ostree-image-signed:docker://" + SIGNED
    rebased = status_with(
        origin="ostree-image-signed:docker://" + SIGNED,
        **{"container-image-reference": "ostree-image-signed:docker://" + SIGNED},
    )
    trusted = {"os": {"trust": TRUST, "rebase": {"image": SIGNED}}}
    answers = {STATUS: [(0, fixture_text(PLAIN), ""), (0, rebased, "")], rebase: OK}
    result, calls = run(trusted, answers)
    assert "failed" not in result and result["changed"] is True, result
    assert [call for call in calls if call != STATUS] == [rebase]
    policy = json.loads((run.root / "etc/containers/policy.json").read_text())
    assert policy["default"] == [{"type": "reject"}]
    assert policy["transports"]["docker"]["quay.io/fedora"][0]["keyPath"] == "/etc/pki/containers/quay.io-fedora.pub"
    assert (run.root / "etc/pki/containers/quay.io-fedora.pub").read_text() == COSIGN_KEY
    again, calls = run(trusted, {STATUS: (0, rebased, "")})
    assert again["changed"] is False and calls == [STATUS], again


def test_a_check_layers_from_a_repository_the_document_adds_without_a_dry_run(run):
    document = {
        "os": {
            "repos": [{"name": "lab-extras", "baseurl": ["https://repo.example/fedora-$releasever/$basearch/"]}],
            "packages": {"name": ["tailscale"]},
        }
    }
    result, calls = run(document, {STATUS: (0, fixture_text(PLAIN), "")}, check=True)
    assert "failed" not in result and result["changed"] is True, result
    assert calls == [STATUS]  # no rpm-ostree install --dry-run: it cannot see lab-extras yet
    repo, layered = result["resources"]
    assert repo["changed"] is True and layered["installed"] == ["tailscale"]
    assert any("/etc/yum.repos.d/lab-extras.repo" in warning for warning in layered["warnings"]), layered
    assert not (run.root / "etc/yum.repos.d").exists()


def test_registry_credentials_are_named_never_shown(run):
    document = {
        "os": {"registry_auth": [{"registry": "registry.example.com:5001", "username": "lab", "password": "s3cret-pw"}]},
        "users": [
            {"name": "core", "registry_auth": [{"registry": "registry.example.com", "username": "me", "password": "an0ther"}]}
        ],
    }
    result, _calls = run(document, {STATUS: (0, fixture_text(PLAIN), "")})
    assert "failed" not in result and result["changed"] is True, result.get("msg")
    assert [entry["resource"] for entry in result["resources"]] == [
        "registry_auth registry.example.com:5001",
        "rootless_user core",
        "registry_auth registry.example.com (user=core)",
    ]
    assert "s3cret-pw" not in json.dumps(result) and "an0ther" not in json.dumps(result)
    system = json.loads((run.root / "etc/ostree/auth.json").read_text())
    assert list(system["auths"]) == ["registry.example.com:5001"]
    assert json.loads((run.root / "home/core/.config/containers/auth.json").read_text())["auths"].keys() == {
        "registry.example.com"
    }
    again, _again_calls = run(document, {STATUS: (0, fixture_text(PLAIN), "")})
    assert again["changed"] is False, again
