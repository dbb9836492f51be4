"""The immutable.hosts.drift callback, driven through its v2_* methods with ansible-core's own objects: the plugin
set up as the plugin loader sets it up (options from its DOCUMENTATION), real Host, Task, Play and AggregateStats, and the task results ansible-core hands to
callbacks (built the way its strategy builds them). One test runs a real ansible-playbook in check mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from ansible.module_utils import _internal as module_utils_internal
except ImportError:  # ansible-core < 2.19 has no controller mode for module_utils
    module_utils_internal = None

# Importing controller code (below) flips module_utils into controller mode for the whole process, where
# AnsibleModule.warn() goes to Display instead of the module result; the module tests collected after this file
# expect module mode. Restore it after the imports, and switch it on only while these tests run.
WAS_CONTROLLER = getattr(module_utils_internal, "is_controller", None)

from ansible import context  # noqa: E402
from ansible.constants import config  # noqa: E402
from ansible.executor.stats import AggregateStats  # noqa: E402
from ansible.inventory.host import Host  # noqa: E402
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: E402
from ansible.module_utils.common.collections import ImmutableDict  # noqa: E402
from ansible.parsing.yaml.loader import AnsibleLoader  # noqa: E402
from ansible.playbook import Playbook  # noqa: E402
from ansible.playbook.play import Play  # noqa: E402
from ansible.playbook.task import Task  # noqa: E402

from ansible_collections.immutable.hosts.plugins.callback import drift  # noqa: E402
from ansible_collections.immutable.hosts.plugins.module_utils import _host_state as host_state  # noqa: E402

if module_utils_internal is not None:
    module_utils_internal.is_controller = WAS_CONTROLLER

COLLECTION = Path(__file__).resolve().parents[4]


@pytest.fixture(autouse=True)
def controller_mode(monkeypatch):
    if module_utils_internal is not None:
        monkeypatch.setattr(module_utils_internal, "is_controller", True)


COLLECTIONS_ROOT = COLLECTION.parents[2]


def callback_result(host: Host, task: Task, data: dict):
    """The result object callbacks receive, made as ansible-core makes it (2.16, 2.19/2.20 and 2.21 differ)."""
    try:
        from ansible.executor.task_result import _RawTaskResult
    except ImportError:
        try:
            from ansible._internal._task import UnifiedTaskResult
            from ansible.executor.task_result import CallbackTaskResult
        except ImportError:  # 2.16: the TaskResult the strategy hands over
            from ansible.executor.task_result import TaskResult

            return TaskResult(host, task, data, task_fields={})
        return CallbackTaskResult(host, task, UnifiedTaskResult.from_action_result_dict(data))
    return _RawTaskResult(host, task, data, task_fields={}).as_callback_task_result()


def make_task(name: str, action: str, args: dict | None = None) -> Task:
    task = Task()
    task.name = name
    task.action = action
    task.args = args or {}
    return task


def load_callback() -> drift.CallbackModule:
    """What the plugin loader does for a callback: register the options of its DOCUMENTATION under its load name,
    instantiate it. (The loader itself would install the collection finder in this process, which the other unit
    tests, importing the collection from PYTHONPATH, do not expect.)"""
    options = AnsibleLoader(drift.DOCUMENTATION).get_single_data()["options"]
    config.initialize_plugin_configuration_definitions("callback", drift.__name__, options)
    callback = drift.CallbackModule()
    callback._load_name = drift.__name__
    return callback


def test_documentation_declares_the_plugin():
    doc = AnsibleLoader(drift.DOCUMENTATION).get_single_data()
    assert doc["name"] == "drift" and doc["type"] == "aggregate"
    assert doc["options"]["report_path"]["env"] == [{"name": "IMMUTABLE_HOSTS_DRIFT_REPORT"}]
    assert drift.CallbackModule.CALLBACK_NEEDS_ENABLED is True and drift.CallbackModule.CALLBACK_TYPE == "aggregate"


def test_report_path_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IMMUTABLE_HOSTS_DRIFT_REPORT", str(tmp_path / "env.json"))
    callback = load_callback()
    callback.set_options()
    assert callback.get_option("report_path") == str(tmp_path / "env.json")
    assert callback.get_option("events_path") is None


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=True, diff=True))
    callback = load_callback()
    callback.set_options(direct={"report_path": str(tmp_path / "out" / "drift.json"), "events_path": str(tmp_path / "ev")})
    playbook = Playbook(loader=None)
    playbook._file_name = "playbooks/drift.yml"
    callback.v2_playbook_on_start(playbook)
    play = Play()
    play.name = "Converge"
    callback.v2_playbook_on_play_start(play)
    return callback


def finish(callback, tmp_path: Path, stats: AggregateStats) -> dict:
    callback.v2_playbook_on_stats(stats)
    report = tmp_path / "out" / "drift.json"
    # Diffs carry values from the hosts: the report is its reader's alone, and no temporary file is left behind.
    assert report.stat().st_mode & 0o777 == 0o600 and sorted(p.name for p in report.parent.iterdir()) == ["drift.json"]
    return json.loads(report.read_text())


def test_changes_failures_unreachable_and_the_document(plugin, tmp_path):
    web, db, gone = Host("web-1"), Host("db-1"), Host("old-1")
    stats = AggregateStats()
    remote = make_task("Flathub remote", "immutable.hosts.flatpak_remote", {"name": "{{ remote }}"})
    packages = make_task("Layered packages", "immutable.hosts.rpm_ostree_packages", {"name": ["htop"]})
    ping = make_task("Ping", "ansible.builtin.ping")

    plugin.v2_runner_on_ok(
        callback_result(
            web,
            remote,
            {
                "changed": True,
                "diff": {"before": {"enabled": False, "priority": (1, 2)}, "after": {"enabled": True, "priority": {3}}},
                "invocation": {"module_args": {"name": "flathub", "scope": "system"}},
                "commands": [["/usr/bin/flatpak", "remote-modify", "--enable", "flathub"]],
            },
        )
    )
    plugin.v2_runner_on_ok(
        callback_result(
            web,
            packages,
            {
                "changed": True,
                "diff": [{"before": {"requested_packages": ["htop", "tmux"]}, "after": {"requested_packages": ["htop"]}}],
                "reboot_required": True,
            },
        )
    )
    plugin.v2_runner_on_ok(callback_result(db, packages, {"changed": False, "diff": {"before": {}, "after": {}}}))
    plugin.v2_runner_on_ok(callback_result(db, ping, {"changed": False, "ping": "pong"}))
    plugin.v2_runner_on_failed(callback_result(db, ping, {"failed": True, "msg": "ignored failure"}), ignore_errors=True)
    plugin.v2_runner_on_unreachable(callback_result(gone, ping, {"unreachable": True, "msg": "ssh: connection refused"}))
    for host, event in (("web-1", "changed"), ("web-1", "ok"), ("db-1", "ok"), ("db-1", "ignored"), ("old-1", "dark")):
        stats.increment(event, host)

    document = finish(plugin, tmp_path, stats)
    assert document["format"] == "immutable.hosts.drift/1"
    assert document["check_mode"] is True
    assert document["playbooks"] == ["playbooks/drift.yml"]
    assert document["summary"] == {"hosts": 3, "in_sync": 1, "drifted": 1, "failed": 0, "unreachable": 1, "changes": 2}
    web_report = document["hosts"]["web-1"]
    assert web_report["status"] == "drifted"
    first, second = web_report["changes"]
    # the resource comes from the module arguments the module saw, not the unrendered template
    assert first["resource"] == "flatpak_remote flathub (scope=system)"
    assert first["play"] == "Converge" and first["task"] == "Flathub remote"
    assert first["diff"] == [{"before": {"enabled": False, "priority": [1, 2]}, "after": {"enabled": True, "priority": [3]}}]
    assert first["commands"] == [["/usr/bin/flatpak", "remote-modify", "--enable", "flathub"]]
    assert second["resource"] == "layered packages" and second["reboot_required"] is True
    assert document["hosts"]["db-1"]["status"] == "in_sync"
    assert document["hosts"]["db-1"]["failures"][0]["ignored"] is True
    assert document["hosts"]["db-1"]["stats"]["ignored"] == 1
    assert document["hosts"]["old-1"]["status"] == "unreachable"
    assert document["hosts"]["old-1"]["unreachable"]["msg"] == "ssh: connection refused"
    events = [json.loads(line) for line in (tmp_path / "ev").read_text().splitlines()]
    assert [(e["host"], e["status"], e["changed"]) for e in events] == [
        ("web-1", "ok", True),
        ("web-1", "ok", True),
        ("db-1", "ok", False),
        ("db-1", "ok", False),
        ("db-1", "failed", False),
        ("old-1", "unreachable", False),
    ]


def test_loop_items_failed_host_and_unchecked_tasks(plugin, tmp_path):
    host = Host("web-1")
    loop = make_task("Overrides", "immutable.hosts.flatpak_override")
    plugin.v2_runner_on_ok(
        callback_result(
            host,
            loop,
            {
                "changed": True,
                "results": [
                    {"changed": True, "item": "org.example.Editor", "diff": {"before": {}, "after": {"sockets": ["wayland"]}}},
                    {"changed": False, "item": "org.example.Chat", "diff": {"before": {}, "after": {}}},
                    {"changed": True, "item": "global", "invocation": {"module_args": {"global": True, "app": None}}},
                ],
            },
        )
    )
    command = make_task("Custom script", "ansible.builtin.command", {"_raw_params": "/usr/local/bin/x"})
    plugin.v2_runner_on_skipped(
        callback_result(host, command, {"skipped": True, "msg": "Command would have run if not in check mode"})
    )
    other = make_task("Old module", "community.general.rpm_ostree_pkg")
    plugin.v2_runner_on_skipped(
        callback_result(host, other, {"skipped": True, "msg": "remote module (rpm_ostree_pkg) does not support check mode"})
    )
    plugin.v2_runner_on_skipped(callback_result(host, other, {"skipped": True, "skip_reason": "Conditional result was False"}))
    plugin.v2_runner_on_failed(callback_result(host, command, {"failed": True, "msg": "boom", "rc": 1}))

    stats = AggregateStats()
    stats.increment("failures", "web-1")
    document = finish(plugin, tmp_path, stats)
    report = document["hosts"]["web-1"]
    assert report["status"] == "failed"
    assert [c["resource"] for c in report["changes"]] == [
        "flatpak_override org.example.Editor",
        "flatpak_override global",
    ]
    assert report["changes"][0]["item"] == "org.example.Editor"
    assert report["changes"][0]["diff"] == [{"before": {}, "after": {"sockets": ["wayland"]}}]
    assert report["changes"][1]["diff"] == []
    assert [u["task"] for u in report["unchecked"]] == ["Custom script", "Old module"]
    assert report["failures"] == [
        {
            "play": "Converge",
            "task": "Custom script",
            "action": "ansible.builtin.command",
            "path": None,
            "msg": "boom",
            "ignored": False,
        }
    ]
    assert document["summary"]["failed"] == 1 and document["summary"]["drifted"] == 1


def test_host_state_resources_are_recorded_under_the_module_each_ran(plugin, tmp_path):
    host = Host("web-1")
    task = make_task("The whole host", "immutable.hosts.host_state")
    plugin.v2_runner_on_ok(
        callback_result(
            host,
            task,
            {
                "changed": True,
                "diff": [{"before_header": "flatpak", "before": {}, "after": {"refs": ["x"]}}],
                "resources": [
                    {
                        "changed": False,
                        "resource": "flatpak_remote flathub",
                        "module": "immutable.hosts.flatpak_remote",
                        "args": {"name": "flathub", "scope": "system"},
                    },
                    {
                        "changed": True,
                        "resource": "flatpak",
                        "module": "immutable.hosts.flatpak",
                        "args": {"name": ["org.example.Chat"], "user": "core"},
                        "diff": {"before": {"refs": {}}, "after": {"refs": {"app/org.example.Chat/x86_64/stable": {}}}},
                        "commands": [["flatpak", "install", "--system", "flathub", "org.example.Chat"]],
                    },
                    {
                        "changed": True,
                        "resource": "quadlet web (user=core)",
                        "module": "immutable.hosts.quadlet",
                        "args": {"name": "web", "user": "core", "kind": "container", "state": "present"},
                        "diff": [{"before": "", "after": "[Container]\n"}],
                    },
                ],
                "invocation": {"module_args": {"users": [{"name": "core", "secrets": [{"data": "VALUE_SPECIFIED_IN_NO_LOG"}]}]}},
            },
        )
    )
    report = finish(plugin, tmp_path, AggregateStats())["hosts"]["web-1"]
    assert [change["action"] for change in report["changes"]] == ["immutable.hosts.flatpak", "immutable.hosts.quadlet"]
    change = report["changes"][0]
    assert change["task"] == "The whole host"
    assert change["resource"] == "flatpak apps (user=core)"  # as for a flatpak task of its own
    assert change["diff"] == [{"before": {"refs": {}}, "after": {"refs": {"app/org.example.Chat/x86_64/stable": {}}}}]
    assert change["commands"] == [["flatpak", "install", "--system", "flathub", "org.example.Chat"]]
    assert report["changes"][1]["resource"] == "quadlet web (user=core)"


def test_json_safe_and_resource_names():
    assert drift.json_safe({1: b"\xff", "s": {3, 1}, "t": (1, [2]), "o": object}) == {
        "1": "\ufffd",
        "s": [1, 3],
        "t": [1, [2]],
        "o": "<class 'object'>",
    }
    assert drift.normalise_diff(None) == []
    assert drift.normalise_diff({"before": "a\n", "after": "b\n", "before_header": "/etc/x", "ignored": 1}) == [
        {"before_header": "/etc/x", "before": "a\n", "after": "b\n"}
    ]
    assert drift.normalise_diff(["text diff"]) == [{"prepared": "text diff"}]
    assert drift.resource_name("immutable.hosts.kargs", {"args": ["quiet"]}) == "kernel arguments"
    assert drift.resource_name("immutable.hosts.flatpak", {"name": ["a.b.C"], "user": "core", "scope": "user"}) == (
        "flatpak apps (user=core)"
    )
    assert drift.resource_name("ansible.builtin.copy", {"dest": "/etc/motd"}) == "copy /etc/motd"
    assert drift.resource_name("immutable.hosts.quadlet", {"name": "web.container", "user": "core"}) == (
        "quadlet web.container (user=core)"
    )
    assert drift.resource_name("ansible.builtin.service", {}, item_label="sshd") == "service sshd"
    # Trust, credentials and the initramfs: named by what they configure, never by a key or a password.
    pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    assert drift.resource_name(
        "immutable.hosts.image_policy", {"scope": "quay.io/fedora", "key": pem, "transport": "docker"}
    ) == ("image_policy quay.io/fedora")
    assert drift.resource_name("immutable.hosts.image_policy", {"scope": None, "type": "reject"}) == "image_policy default"
    assert (
        drift.resource_name("immutable.hosts.image_policy", {"scope": "", "transport": "oci"})
        == 'image_policy "" (transport=oci)'
    )
    auth = {
        "registry": "registry.lab:5001",
        "username": "lab",
        "password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER",
        "scope": "user",
        "user": "core",
    }
    assert drift.resource_name("immutable.hosts.registry_auth", auth) == "registry_auth registry.lab:5001 (user=core)"
    assert drift.resource_name("immutable.hosts.initramfs", {"regenerate": True, "etc": ["/etc/crypttab"]}) == "initramfs"


def test_host_state_names_trust_credentials_repositories_and_initramfs_as_their_own_tasks_do():
    document = {
        "os": {
            "trust": [
                {"type": "reject"},
                {"scope": "quay.io/fedora", "key": "k"},
                {"scope": "", "transport": "oci", "type": "reject"},
            ],
            "registry_auth": [{"registry": "registry.lab:5001", "username": "lab", "password": "pw"}],
            "repos": [{"copr": "lab/tools"}, {"name": "tailscale-stable", "baseurl": ["https://pkgs.example/"]}],
            "initramfs": {"regenerate": True, "etc": ["/etc/crypttab"]},
        },
        "users": [{"name": "core", "registry_auth": [{"registry": "quay.io", "username": "me", "password": "pw"}]}],
    }
    params = ArgumentSpecValidator(host_state.ARGUMENT_SPEC).validate(document).validated_parameters
    names = [drift.resource_name("immutable.hosts." + r.module, r.args) for r in host_state.resources(params)]
    assert names == [
        "image_policy default",
        "image_policy quay.io/fedora",
        'image_policy "" (transport=oci)',
        "registry_auth registry.lab:5001",
        "rpm_repo lab/tools",
        "rpm_repo tailscale-stable",
        "initramfs",
        "rootless_user core",
        "registry_auth quay.io (user=core)",
    ]
    # the labels of the module's own messages say the same
    labels = [host_state.label(r) for r in host_state.resources(params)]
    assert labels[:6] == names[:6] and labels[-1] == names[-1]
    assert drift.resource_name("immutable.hosts.rpm_repo", {"copr": "lab/tools", "priority": 50}) == "rpm_repo lab/tools"


def test_an_unwritable_report_is_a_warning_not_a_crash(plugin, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    plugin.set_options(direct={"report_path": str(blocker / "drift.json")})
    warnings = []
    monkeypatch.setattr(plugin._display, "warning", warnings.append)
    plugin.v2_playbook_on_stats(AggregateStats())
    assert warnings and "could not write the drift report" in warnings[0]


@pytest.mark.skipif(COLLECTIONS_ROOT.name == "" or not (COLLECTIONS_ROOT / "ansible_collections").is_dir(), reason="not a tree")
def test_a_real_check_mode_run_on_localhost(tmp_path):
    """ansible-playbook --check --diff with the callback enabled by name: a would-change file with its text diff, a
    loop, a skipped command, an ignored failure and an unreachable host."""
    target = tmp_path / "motd"
    target.write_text("old\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                        "dead": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1},
                    },
                    "children": {"laptops": {"hosts": {"local": {}}}, "office": {"children": {"laptops": {}}}},
                }
            }
        )
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: Message of the day
      ansible.builtin.copy: {{dest: "{target}", content: "new\\n"}}
    - name: Files
      ansible.builtin.copy: {{dest: "{tmp_path}/{{{{ item }}}}", content: "x\\n"}}
      loop: [a, b]
    - name: Script
      ansible.builtin.command: /bin/true
    - name: Fails
      ansible.builtin.fail: {{msg: expected}}
      ignore_errors: true
"""
    )
    report = tmp_path / "drift.json"
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
        "ANSIBLE_CALLBACKS_ENABLED": "immutable.hosts.drift",
        "IMMUTABLE_HOSTS_DRIFT_REPORT": str(report),
        "ANSIBLE_SSH_ARGS": "-o ConnectTimeout=5",
    }
    ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
    done = subprocess.run(
        [ansible_playbook, "-i", str(inventory), "--check", "--diff", str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr  # 4: a host was unreachable
    document = json.loads(report.read_text())
    local = document["hosts"]["local"]
    assert local["status"] == "drifted"
    assert local["changes"][0]["resource"] == f"copy {target}"
    # loop items: ansible-core 2.19 hands callbacks each item's invocation (the templated dest), 2.21 only the item
    assert [c["resource"] for c in local["changes"][1:]] in (
        [f"copy {tmp_path}/a", f"copy {tmp_path}/b"],
        ["copy a", "copy b"],
    )
    assert [c["item"] for c in local["changes"][1:]] == ["a", "b"]
    assert local["changes"][0]["diff"][0]["before"] == "old\n" and local["changes"][0]["diff"][0]["after"] == "new\n"
    assert [u["task"] for u in local["unchecked"]] == ["Script"]
    assert local["failures"][0]["ignored"] is True
    assert document["hosts"]["dead"]["status"] == "unreachable"
    assert local["groups"] == ["laptops", "office"] and document["hosts"]["dead"]["groups"] == []
    assert target.read_text() == "old\n"  # check mode: nothing changed


def test_a_rollouts_rings_are_named_per_host_and_counted_in_order(plugin, tmp_path):
    """playbooks/upgrade.yml names each host's ring with set_fact immutable_hosts_ring: the report keeps it per host
    and counts each ring, in the order the rollout met them."""
    canary, ring_host, other = Host("ws-9"), Host("ws-1"), Host("ws-2")
    name_ring = make_task("Name the host's ring", "ansible.builtin.set_fact", {"immutable_hosts_ring": "{{ __ring }}"})
    rebase = make_task("Rebase to exactly the canaries' digest", "immutable.hosts.rebase", {"image": "{{ pinned }}"})
    stats = AggregateStats()
    for host, ring in ((canary, "canary"), (ring_host, "all"), (other, "all")):
        plugin.v2_runner_on_ok(
            callback_result(host, name_ring, {"changed": False, "ansible_facts": {"immutable_hosts_ring": ring}})
        )
        stats.increment("ok", host.get_name())
    plugin.v2_runner_on_ok(
        callback_result(ring_host, rebase, {"changed": True, "diff": {"before": {"origin": "a"}, "after": {"origin": "b"}}})
    )
    plugin.v2_runner_on_failed(callback_result(canary, rebase, {"failed": True, "msg": "The rollout stops at ring canary"}))
    document = finish(plugin, tmp_path, stats)
    assert {name: host.get("ring") for name, host in document["hosts"].items()} == {
        "ws-9": "canary",
        "ws-1": "all",
        "ws-2": "all",
    }
    assert document["summary"]["rings"] == [
        {"ring": "canary", "hosts": 1, "in_sync": 0, "drifted": 0, "failed": 1, "unreachable": 0},
        {"ring": "all", "hosts": 2, "in_sync": 1, "drifted": 1, "failed": 0, "unreachable": 0},
    ]
