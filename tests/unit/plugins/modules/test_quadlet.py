"""immutable.hosts.quadlet on unit directories under tmp_path, with systemctl, runuser and the Quadlet generator
answering from a table."""

from __future__ import annotations

import difflib
import os
import pwd

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import Runner
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet as quadlet
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, run_unit

GENERATOR = "/usr/libexec/podman/quadlet"
UID = 1000
AS_CORE = "runuser -u core -- env XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus "
SHOW = "systemctl --user show --property=LoadState,ActiveState,SubState,NeedDaemonReload,FragmentPath,SourcePath web.service"
USER_SHOW = AS_CORE + SHOW
RELOAD = AS_CORE + "systemctl --user daemon-reload"
DRYRUN = "quadlet -dryrun -user"
WEB = {"image": "localhost/bb:latest", "exec": ["/bin/sleep", "1000"], "network": "none"}
WEB_TEXT = (
    "# Managed by Ansible (immutable.hosts.quadlet): changes made here are overwritten.\n"
    "[Container]\nExec=/bin/sleep 1000\nImage=localhost/bb:latest\nNetwork=none\n"
)
GENERATED = "FragmentPath=/run/user/1000/systemd/generator/web.service\nSourcePath=%s\n"
ACTIVE_STATE = "LoadState=loaded\nActiveState=active\nSubState=running\nNeedDaemonReload=no\n" + GENERATED
NOT_FOUND = (0, "LoadState=not-found\nActiveState=inactive\nSubState=dead\nNeedDaemonReload=no\nFragmentPath=\nSourcePath=\n", "")
ACCEPTED = (0, "---web.service---\n[Unit]\nSourcePath=/x/web.container\n[Service]\nExecStart=/usr/bin/podman run x\n", "")
OK = (0, "", "")


def read(path):
    with open(path) as handle:
        return handle.read()


class UnitTools(Tools):
    """Tools that also find binaries outside /usr/bin (runuser, the generator) and record what the generator saw."""

    def __init__(self, answers, generator=True):
        super().__init__(answers)
        self.binaries = {"/usr/bin/systemctl", "/usr/sbin/runuser"} | ({GENERATOR} if generator else set())
        self.generator_saw = None

    def spawn(self, argv, env, timeout, stdin, cwd):
        if argv[0] == GENERATOR:
            directory = env["QUADLET_UNIT_DIRS"]
            self.generator_saw = {name: read(os.path.join(directory, name)) for name in sorted(os.listdir(directory))}
        return super().spawn(argv, env, timeout, stdin, cwd)

    def runner(self) -> Runner:
        runner = super().runner()
        runner.exists = lambda path: path in self.binaries
        return runner


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes files owned by another user: needs root")


def chown_tree(top, stop):
    """Give ``top`` and its parents up to (not including) ``stop`` to the test user, as if the user had made them."""
    path = top
    while path != stop:
        os.chown(path, UID, UID)
        path = path.parent


@pytest.fixture
def host(tmp_path, capsys):
    home = tmp_path / "home/core"
    home.mkdir(parents=True)
    os.chown(home, UID, UID)
    system_dir = tmp_path / "etc/containers/systemd"
    runtime = tmp_path / "run/user"
    (runtime / str(UID) / "systemd").mkdir(parents=True)
    (runtime / str(UID) / "systemd/private").write_text("")
    (tmp_path / "var/lib/systemd/linger").mkdir(parents=True)
    users = {"core": pwd.struct_passwd(("core", "x", UID, UID, "", "/home/core", "/bin/bash"))}

    def run(args, tools, euid=0):
        host = Host(runner=tools.runner(), root=str(tmp_path), passwd=users, euid=euid)
        return run_unit(quadlet.UNIT, args, host, capsys)

    def put(name, text):
        """A unit file the user wrote."""
        run.unit_dir.mkdir(parents=True, exist_ok=True)
        chown_tree(run.unit_dir, home)
        (run.unit_dir / name).write_text(text)
        os.chown(run.unit_dir / name, UID, UID)

    run.home = home
    run.unit_dir = home / ".config/containers/systemd"
    run.system_dir = system_dir
    run.runtime = runtime
    run.put = put
    run.root = tmp_path
    run.active = (0, ACTIVE_STATE % "/home/core/.config/containers/systemd/web.container", "")
    run.inactive = (0, run.active[1].replace("ActiveState=active\nSubState=running", "ActiveState=inactive\nSubState=dead"), "")
    return run


def test_new_user_unit_is_validated_written_reloaded_and_started(host):
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND, RELOAD: OK, AS_CORE + "systemctl --user start web.service": OK})
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert result["changed"] is True and result["actions"] == ["write", "daemon-reload", "start"]
    assert tools.calls == [DRYRUN, USER_SHOW, RELOAD, AS_CORE + "systemctl --user start web.service"]
    path = host.unit_dir / "web.container"
    assert path.read_text() == WEB_TEXT and oct(path.stat().st_mode & 0o777) == "0o644"
    assert (path.stat().st_uid, path.stat().st_gid) == (UID, UID) and (host.home / ".config").stat().st_uid == UID
    assert oct((host.home / ".config").stat().st_mode & 0o777) == "0o700"
    assert tools.generator_saw == {"web.container": WEB_TEXT}
    assert result["validated"] is True and result["generator"] == GENERATOR
    assert result["service"] == "web.service" and result["path"] == "/home/core/.config/containers/systemd/web.container"
    assert result["scope"] == "user"
    assert result["diff"][0]["before"] == "" and result["diff"][0]["after"] == WEB_TEXT
    assert result["active"] is True and result["commands"][0] == [GENERATOR, "-dryrun", "-user"]


def test_second_run_reads_state_once_and_changes_nothing(host):
    host.put("web.container", WEB_TEXT)
    (host.unit_dir / "web.container").chmod(0o644)
    tools = UnitTools({USER_SHOW: host.active})
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert tools.calls == [USER_SHOW]
    assert result["changed"] is False and result["actions"] == []


def test_wrong_mode_is_fixed_through_the_descriptor(host):
    host.put("web.container", WEB_TEXT)
    (host.unit_dir / "web.container").chmod(0o600)
    tools = UnitTools({USER_SHOW: host.active})
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert result["actions"] == ["attributes"] and result["diff"][1]["before"]["mode"] == "0600"
    assert (host.unit_dir / "web.container").stat().st_mode & 0o777 == 0o644


# --- root acting in the user's home: the attacks of the security audit ------------------------------------------


def test_a_config_directory_linked_to_the_system_one_is_refused(host, tmp_path):
    """~/.config/containers -> /etc/containers made a rootless task write a system unit owned by the user."""
    host.system_dir.mkdir(parents=True)
    (host.home / ".config").mkdir()
    os.chown(host.home / ".config", UID, UID)
    os.symlink(host.system_dir.parent, host.home / ".config/containers")
    for check in (True, False):
        tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND, RELOAD: OK})
        result = host({"name": "web", "user": "core", "container": WEB, "_ansible_check_mode": check}, tools)
        assert result["failed"] is True and tools.calls == []
        assert "containers is a symbolic link" in result["msg"] and "refusing to follow it" in result["msg"]
    assert list(host.system_dir.iterdir()) == []


def test_a_unit_linked_to_a_root_only_file_is_never_read_or_shown(host, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$very-secret-hash:19000::::::\n")
    secret.chmod(0o600)
    host.put("other.container", "[Container]\nImage=a.io/b:c\n")
    os.symlink(secret, host.unit_dir / "web.container")
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND, RELOAD: OK})
    result = host({"name": "web", "user": "core", "container": WEB, "_ansible_check_mode": True}, tools)
    assert result["failed"] is True and "web.container is a symbolic link" in result["msg"]
    assert "very-secret-hash" not in str(result) and (secret.stat().st_uid, secret.stat().st_mode & 0o777) == (0, 0o600)


def test_a_sibling_linked_elsewhere_is_not_read_for_validation(host, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("very-secret-hash\n")
    host.put("app.network", "[Network]\n")
    os.symlink(secret, host.unit_dir / "leak.volume")
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND, RELOAD: OK, AS_CORE + "systemctl --user start web.service": OK})
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert sorted(tools.generator_saw) == ["app.network", "web.container"]
    assert "leak.volume is a symbolic link" in str(result["warnings"]) and "very-secret-hash" not in str(result)


def test_the_owner_and_mode_cannot_be_redirected_after_the_rename(host, tmp_path, monkeypatch):
    """chown/chmod by path after the rename followed a link the user swapped in (an inotify loop wins that race)."""
    from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files

    secret = tmp_path / "shadow"
    secret.write_text("x\n")
    secret.chmod(0o600)
    real_rename = os.rename

    def rename_then_swap(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        os.unlink(dst, dir_fd=dst_dir_fd)
        os.symlink(str(secret), dst, dir_fd=dst_dir_fd)

    monkeypatch.setattr(safe_files.os, "rename", rename_then_swap)
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND, RELOAD: OK, AS_CORE + "systemctl --user start web.service": OK})
    host({"name": "web", "user": "core", "container": WEB}, tools)
    info = secret.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, 0, 0o600)


def test_a_name_that_would_shadow_a_vendor_unit_is_refused(host):
    show = SHOW.replace("systemctl --user", "systemctl").replace("web.service", "sshd.service")
    vendor = (
        0,
        "LoadState=loaded\nActiveState=active\nSubState=running\nNeedDaemonReload=no\n"
        "FragmentPath=/usr/lib/systemd/system/ssh.service\nSourcePath=\n",
        "",
    )
    tools = UnitTools({"quadlet -dryrun": (0, "---sshd.service---\n[Service]\n", ""), show: vendor})
    result = host({"name": "sshd", "container": WEB}, tools)
    assert result["failed"] is True and "/usr/lib/systemd/system/ssh.service already provides" in result["msg"]
    assert not (host.system_dir / "sshd.container").exists()


def test_changed_content_restarts_a_running_service(host):
    host.put("web.container", WEB_TEXT.replace("1000", "10"))
    tools = UnitTools(
        {DRYRUN: ACCEPTED, USER_SHOW: host.active, RELOAD: OK, AS_CORE + "systemctl --user restart web.service": OK}
    )
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert result["actions"] == ["write", "daemon-reload", "restart"]
    diff = result["diff"][0]
    unified = "".join(difflib.unified_diff(diff["before"].splitlines(True), diff["after"].splitlines(True)))
    assert "-Exec=/bin/sleep 10\n+Exec=/bin/sleep 1000\n" in unified


def test_restart_on_change_false_leaves_it_running(host):
    host.put("web.container", "[Container]\nImage=old\n")
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: host.active, RELOAD: OK})
    result = host({"name": "web", "user": "core", "container": WEB, "restart_on_change": False}, tools)
    assert result["actions"] == ["write", "daemon-reload"] and tools.calls[-1] == RELOAD


def test_check_mode_validates_and_writes_nothing(host):
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND})
    result = host({"name": "web", "user": "core", "container": WEB, "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and result["actions"] == ["write", "daemon-reload", "start"]
    assert tools.calls == [DRYRUN, USER_SHOW] and not host.unit_dir.exists()
    assert result["diff"][0]["after"] == WEB_TEXT


def test_rejected_unit_fails_with_the_generators_message_and_nothing_is_written(host):
    stderr = "quadlet-generator[42]: converting \"web.container\": unsupported key 'FooBar' in group 'Container' in /tmp/q/web.container\n"
    tools = UnitTools({DRYRUN: (1, "", stderr)})
    result = host({"name": "web", "user": "core", "content": "[Container]\nImage=a.io/b:c\nFooBar=1\n"}, tools)
    assert result["failed"] is True and "unsupported key 'FooBar'" in result["msg"] and tools.calls == []


def test_generator_rejection_of_a_valid_looking_unit(host):
    stderr = 'converting "web.container": requested Quadlet unit app.network was not found\n'
    tools = UnitTools({DRYRUN: (1, "", stderr)})
    result = host({"name": "web", "user": "core", "container": dict(WEB, network="app.network")}, tools)
    assert result["failed"] is True
    assert result["msg"] == (
        'the Quadlet generator /usr/libexec/podman/quadlet rejected web.container: converting "web.container": '
        "requested Quadlet unit app.network was not found"
    )
    assert tools.calls == [DRYRUN] and not (host.unit_dir / "web.container").exists()


def test_sibling_units_are_given_to_the_generator(host):
    host.put("app.network", "[Network]\n")
    host.put("notes.txt", "not a unit")
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND, RELOAD: OK, AS_CORE + "systemctl --user start web.service": OK})
    host({"name": "web", "user": "core", "container": dict(WEB, network="app.network")}, tools)
    assert sorted(tools.generator_saw) == ["app.network", "web.container"]


def test_without_the_generator_the_unit_is_written_unvalidated(host):
    tools = UnitTools({USER_SHOW: NOT_FOUND, RELOAD: OK, AS_CORE + "systemctl --user start web.service": OK}, generator=False)
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert result["changed"] is True and result["validated"] is False and result["generator"] is None


def test_absent_stops_removes_and_reloads(host):
    host.put("web.container", WEB_TEXT)
    tools = UnitTools({USER_SHOW: host.active, AS_CORE + "systemctl --user stop web.service": OK, RELOAD: OK})
    result = host({"name": "web", "user": "core", "state": "absent"}, tools)
    assert result["actions"] == ["stop", "remove", "daemon-reload"]
    assert tools.calls == [USER_SHOW, AS_CORE + "systemctl --user stop web.service", RELOAD]
    assert not (host.unit_dir / "web.container").exists() and result["diff"][0]["after"] == ""


def test_absent_when_gone_runs_nothing(host):
    tools = UnitTools({})
    result = host({"name": "web", "user": "core", "state": "absent"}, tools)
    assert result["changed"] is False and tools.calls == []


def test_started_false_stops(host):
    host.put("web.container", WEB_TEXT)
    tools = UnitTools({USER_SHOW: host.active, AS_CORE + "systemctl --user stop web.service": OK})
    result = host({"name": "web", "user": "core", "container": WEB, "started": False}, tools)
    assert "stop" in result["actions"] and result["active"] is False


def test_system_unit_uses_the_system_instance(host):
    show = SHOW.replace("systemctl --user", "systemctl")
    tools = UnitTools(
        {"quadlet -dryrun": ACCEPTED, show: NOT_FOUND, "systemctl daemon-reload": OK, "systemctl start web.service": OK}
    )
    result = host({"name": "web", "container": WEB, "enabled": True}, tools)
    assert result["scope"] == "system" and result["user"] is None
    assert tools.calls == ["quadlet -dryrun", show, "systemctl daemon-reload", "systemctl start web.service"]
    assert (host.system_dir / "web.container").read_text().endswith("[Install]\nWantedBy=multi-user.target\n")


def test_as_the_user_itself_no_runuser_is_needed(host):
    tools = UnitTools(
        {DRYRUN: ACCEPTED, SHOW: NOT_FOUND, "systemctl --user daemon-reload": OK, "systemctl --user start web.service": OK}
    )
    result = host({"name": "web", "user": "core", "container": WEB}, tools, euid=UID)
    assert result["changed"] is True and tools.calls[1] == SHOW


def test_missing_user_manager_with_linger_is_started_and_awaited(host):
    private = host.runtime / str(UID) / "systemd/private"
    private.unlink()
    (host.root / "var/lib/systemd/linger/core").write_text("")

    class Starting(UnitTools):
        def spawn(self, argv, env, timeout, stdin, cwd):
            if argv[1:] == ["start", "user@1000.service"]:
                private.write_text("")
            return super().spawn(argv, env, timeout, stdin, cwd)

    tools = Starting(
        {
            DRYRUN: ACCEPTED,
            "systemctl start user@1000.service": OK,
            USER_SHOW: NOT_FOUND,
            RELOAD: OK,
            AS_CORE + "systemctl --user start web.service": OK,
        }
    )
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert result["changed"] is True and tools.calls[1] == "systemctl start user@1000.service"


def test_missing_user_manager_without_linger_fails_before_writing(host):
    (host.runtime / str(UID) / "systemd/private").unlink()
    tools = UnitTools({DRYRUN: ACCEPTED})
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert result["failed"] is True and "turn linger on" in result["msg"]
    assert not (host.unit_dir / "web.container").exists()


def test_missing_user_manager_in_check_mode_warns(host):
    (host.runtime / str(UID) / "systemd/private").unlink()
    tools = UnitTools({DRYRUN: ACCEPTED})
    result = host({"name": "web", "user": "core", "container": WEB, "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and "not running" in str(result["warnings"])


def test_pod_service_name(host):
    pod_show = USER_SHOW.replace("web.service", "app-pod.service")
    tools = UnitTools(
        {
            DRYRUN: (0, "---app-pod.service---\n[Service]\n", ""),
            pod_show: NOT_FOUND,
            RELOAD: OK,
            AS_CORE + "systemctl --user start app-pod.service": OK,
        }
    )
    result = host({"name": "app", "kind": "pod", "user": "core", "pod": {"publish_port": ["8080:80"]}}, tools)
    assert result["service"] == "app-pod.service" and result["unit"] == "app.pod"


def test_build_is_not_started_by_default(host):
    show = USER_SHOW.replace("web.service", "img-build.service")
    tools = UnitTools({DRYRUN: (0, "---img-build.service---\n[Service]\n", ""), show: NOT_FOUND, RELOAD: OK})
    result = host(
        {"name": "img", "kind": "build", "user": "core", "build": {"image_tag": "localhost/x", "file": "/srv/Containerfile"}},
        tools,
    )
    assert result["actions"] == ["write", "daemon-reload"]


BAD_INPUTS = [
    {"name": "../evil", "container": WEB},
    {"name": "a/b", "container": WEB},
    {"name": "web\nExecStart=/bin/evil", "container": WEB},
    {"name": "web.container", "container": WEB},
    {"name": "", "container": WEB},
    {"name": "web", "kind": "daemon", "container": WEB},
    {"name": "web", "container": dict(WEB, frobnicate=1)},
    {"name": "web", "container": dict(WEB, image="a\nExecStartPre=/bin/evil")},
    {"name": "web", "container": dict(WEB, environment={"A": "1\r\nB=2"})},
    {"name": "web", "container": {"exec": "/bin/true"}},
    {"name": "web", "container": WEB, "pod": {"pod_name": "x"}},
    {"name": "web", "container": WEB, "content": "[Container]\nImage=x\n"},
    {"name": "web", "content": "[Container]\nImage=x\nFooBar=1\n"},
    {"name": "web", "content": "[Container]\nthis is not valid\n"},
    {"name": "web", "kind": "pod", "content": "[Container]\nImage=x\n"},
    {"name": "web", "content": "[Container]\nImage=x\n", "enabled": True},
    {"name": "web", "container": WEB, "enabled": False, "install": {"wanted_by": "default.target"}},
    {"name": "web", "container": WEB, "install": {"before": "x"}},
    {"name": "web", "container": WEB, "unit": {"description": "a\nb"}},
    {"name": "web", "container": WEB, "user": "nobody-here"},
    {"name": "web", "container": WEB, "state": "running"},
    {"name": "web", "container": ["image"]},
    {"name": "web", "container": WEB, "started": "maybe"},
]


@pytest.mark.parametrize("args", BAD_INPUTS)
def test_bad_input_fails_before_any_command(host, args):
    tools = UnitTools({})
    result = host(dict(args, user=args.get("user", "core")), tools)
    assert result["failed"] is True and tools.calls == [] and not host.unit_dir.exists()


def test_the_users_namespace_is_made_before_the_first_service_of_the_user_starts(host):
    """The first Podman process of a user makes its namespace and pause process; when that is a service's own
    ``podman run``, systemd can fail the service (result 'protocol'), so the module makes them first."""
    start = AS_CORE + "systemctl --user start web.service"
    unshare = AS_CORE + "podman unshare true"
    tools = UnitTools({DRYRUN: ACCEPTED, USER_SHOW: NOT_FOUND, RELOAD: OK, unshare: OK, start: OK})
    tools.binaries.add("/usr/bin/podman")
    result = host({"name": "web", "user": "core", "container": WEB}, tools)
    assert result["changed"] is True and tools.calls == [DRYRUN, USER_SHOW, RELOAD, unshare, start]
