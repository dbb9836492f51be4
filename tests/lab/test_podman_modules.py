"""The Podman modules (rootless_user, quadlet) against a real lab host: real systemd, podman 5.4 and its Quadlet
generator, user ``core`` (uid 1000), the preloaded image ``localhost/lab/busybox:latest``.

Every scenario goes through ``ansible-playbook`` (the harness), is run twice (the second run changes nothing), and
runs in check mode on a drifted host, which must report the drift with its diff and leave the snapshot unchanged.
Only ``silverblue-6`` is used; the other hosts belong to other test files.

Units use ``Pull=never`` (the host has no route out) and ``Network=none`` or rootless pasta: bridge networks
(rootful, or a rootless ``.network`` attached to a container) fail inside nspawn with netavark's sysctl error.
Containers run ``sh -c "trap 'exit 0' TERM; … & wait"`` so that stopping them takes no 10 s stop timeout.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from harness import Lab, RunResult, TaskResult
from snapshot import HostAccess, assert_unchanged, snapshot, snapshot_hash

pytestmark = pytest.mark.lab

HOST = "silverblue-6"
IMAGE = "localhost/lab/busybox:latest"
CORE_UID = 1000
GENERATOR = "/usr/libexec/podman/quadlet"
CORE_QUADLET_DIR = "/home/core/.config/containers/systemd"
SYSTEM_QUADLET_DIR = "/etc/containers/systemd"
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]


# --------------------------------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def network_online(lab_session) -> None:
    """The host reached network-online.target at boot, as a Fedora host does: podman 5.4 orders rootless Quadlet
    services after ``podman-user-wait-network-online.service``, which would otherwise poll for 90 s."""
    if HOST not in lab_session.all_hosts:
        pytest.skip(f"host {HOST} is not in this session (LAB_TEST_HOSTS)")
    done = lab_session.access(HOST).run(["systemctl", "is-active", "network-online.target"])
    assert done.stdout.strip() == "active", done.stdout + done.stderr


@pytest.fixture
def host(lab_hosts, lab_session, network_online) -> HostAccess:
    lab_hosts(HOST)
    return lab_session.access(HOST)


def sh(host: HostAccess, script: str, user: str = "root", check: bool = True) -> str:
    done = host.run(["sh", "-c", script], user=user)
    if check:
        assert done.returncode == 0, f"{script!r} as {user}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def play(lab: Lab, tasks: list[dict[str, Any]], *, check: bool = False) -> RunResult:
    """One play of ``tasks`` on HOST through ansible-playbook, always with --diff."""
    text = yaml.safe_dump([{"hosts": HOST, "gather_facts": False, "tasks": tasks}], sort_keys=False)
    return lab.playbook_text(text, hosts=[HOST], check=check, diff=True)


def converged(lab: Lab, tasks: list[dict[str, Any]], probe: Callable[[], Any] | None = None) -> RunResult:
    """Apply, then apply again: the second run must succeed without any change, and ``probe()`` (the services'
    InvocationID and MainPID) must read the same after both runs: nothing was restarted."""
    first = play(lab, tasks)
    assert first.ok, first.explain()
    seen = probe() if probe else None
    second = play(lab, tasks)
    assert second.ok, second.explain()
    assert not second.changed(), [(t.task, t.result.get("actions")) for t in second.changed_tasks()]
    if probe:
        assert probe() == seen, "the second run restarted a service"
    return first


def only(run: RunResult, name: str) -> TaskResult:
    return run.task(name, HOST)


def file_diff(result: TaskResult) -> dict[str, str]:
    """The quadlet module's file diff (the first entry of its diff list)."""
    assert isinstance(result.diff, list) and result.diff, result.diff
    return result.diff[0]


def quadlet_task(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "immutable.hosts.quadlet": {"name": name, **args}}


def rootless_task(name: str, **args: Any) -> dict[str, Any]:
    return {"name": f"rootless {name}", "immutable.hosts.rootless_user": {"name": name, **args}}


def show(host: HostAccess, unit: str, *, user: bool = True) -> dict[str, str]:
    """``systemctl show`` of a unit: the user's instance is reached as root through runuser, without a login
    session of core (what linger must make possible)."""
    props = "LoadState,ActiveState,SubState,InvocationID,MainPID"
    if user:
        argv = ["runuser", "-u", "core", "--", "env", f"XDG_RUNTIME_DIR=/run/user/{CORE_UID}"]
        argv += ["systemctl", "--user", "show", "-p", props, unit]
    else:
        argv = ["systemctl", "show", "-p", props, unit]
    done = host.run(argv)
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def invocation(host: HostAccess, *units: str, user: bool = True) -> dict[str, tuple[str, str]]:
    """Each unit's (InvocationID, MainPID): a restart changes both."""
    return {unit: (state["InvocationID"], state["MainPID"]) for unit in units for state in [show(host, unit, user=user)]}


def active_as_core(host: HostAccess, *units: str) -> list[str]:
    """``systemctl --user is-active`` run as core over SSH."""
    done = host.run(["systemctl", "--user", "is-active", *units], user="core")
    return done.stdout.split()


def core_login_sessions(host: HostAccess) -> list[str]:
    """core's login sessions (class ``user``: SSH, console), not the ``manager`` session systemd 257 gives the user's
    instance itself; waits briefly for closed SSH sessions to go."""
    deadline = time.monotonic() + 10
    while True:
        sessions = json.loads(sh(host, "loginctl list-sessions --json=short"))
        mine = [s["session"] for s in sessions if s["user"] == "core" and s["class"].startswith("user")]
        if not mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)


def exists(host: HostAccess, path: str) -> bool:
    return host.run(["test", "-e", path]).returncode == 0


def subids(text: str) -> list[tuple[str, int, int]]:
    entries = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            owner, start, count = line.strip().split(":")
            entries.append((owner, int(start), int(count)))
    return entries


def assert_no_overlap(entries: list[tuple[str, int, int]]) -> None:
    for index, (owner, start, count) in enumerate(entries):
        for other, other_start, other_count in entries[index + 1 :]:
            if owner != other:
                assert start + count <= other_start or other_start + other_count <= start, (
                    f"{owner}:{start}:{count} overlaps {other}:{other_start}:{other_count}"
                )


# --------------------------------------------------------------------------------------------------------------------
# rootless_user


def test_rootless_user_creates_app1_with_free_ranges_and_linger(lab: Lab, host: HostAccess) -> None:
    assert host.run(["id", "app1"]).returncode != 0, "app1 exists before the test"
    tasks = [rootless_task("app1", create=True)]

    # drift: app1 is missing. Check mode reports it and changes nothing.
    before = snapshot(host)
    run = play(lab, tasks, check=True)
    assert run.ok, run.explain()
    result = only(run, "rootless app1")
    assert result.changed
    assert result.diff["before"] == {"exists": False, "subuid": [], "subgid": [], "linger": False}
    assert result.diff["after"]["exists"] is True and result.diff["after"]["linger"] is True
    assert result.diff["after"]["subuid"] == [{"start": 165536, "count": 65536}]  # the lowest gap after core's
    assert_unchanged(before, snapshot(host))
    assert host.run(["id", "app1"]).returncode != 0, "check mode created the user"

    run = converged(lab, tasks)
    result = only(run, "rootless app1").result
    uid = int(sh(host, "id -u app1"))
    assert result["created"] is True and result["uid"] == uid and result["linger"] is True
    assert result["runtime_dir"] == f"/run/user/{uid}"
    assert result["quadlet_dir"] == "/home/app1/.config/containers/systemd"
    for path in ("/etc/subuid", "/etc/subgid"):
        entries = subids(sh(host, f"cat {path}"))
        assert_no_overlap(entries)
        mine = [e for e in entries if e[0] in ("app1", str(uid))]
        assert sum(count for _, _, count in mine) == 65536, (path, entries)
        assert [e for e in entries if e[0] == "core"] == [("core", 100000, 65536)], (path, entries)
    assert exists(host, "/var/lib/systemd/linger/app1")

    # more ids: one new range in the lowest free gap, never a duplicate; check mode first
    tasks = [rootless_task("app1", subuid_count=131072, subgid_count=131072)]
    before = snapshot(host)
    subuid_before = sh(host, "cat /etc/subuid")
    run = play(lab, tasks, check=True)
    assert run.ok, run.explain()
    result = only(run, "rootless app1")
    assert result.changed
    assert result.diff["before"]["subuid"] == [{"start": 165536, "count": 65536}]
    assert result.diff["after"]["subuid"] == [{"start": 165536, "count": 65536}, {"start": 231072, "count": 65536}]
    assert_unchanged(before, snapshot(host))
    assert sh(host, "cat /etc/subuid") == subuid_before

    converged(lab, tasks)
    for path in ("/etc/subuid", "/etc/subgid"):
        entries = subids(sh(host, f"cat {path}"))
        assert_no_overlap(entries)
        assert sorted(e for e in entries if e[0] == "app1") == [("app1", 165536, 65536), ("app1", 231072, 65536)]
        assert len(entries) == len(set(entries)), f"duplicate entries in {path}: {entries}"


def test_rootless_user_core_converges_without_duplicating_entries(lab: Lab, host: HostAccess) -> None:
    sh(host, "loginctl disable-linger core")  # the drift: linger off (as on a fresh host)
    texts = {path: sh(host, f"cat {path}") for path in ("/etc/subuid", "/etc/subgid")}
    tasks = [rootless_task("core")]

    before = snapshot(host)
    run = play(lab, tasks, check=True)
    assert run.ok, run.explain()
    result = only(run, "rootless core")
    assert result.changed
    ranges = [{"start": 100000, "count": 65536}]
    assert result.diff == {
        "before": {"exists": True, "subuid": ranges, "subgid": ranges, "linger": False},
        "after": {"exists": True, "subuid": ranges, "subgid": ranges, "linger": True},
    }
    assert_unchanged(before, snapshot(host))

    run = converged(lab, tasks)
    result = only(run, "rootless core").result
    assert result["commands"] == [["/usr/bin/loginctl", "enable-linger", "core"]], "only linger may change"
    assert result["uid"] == CORE_UID and result["quadlet_dir"] == CORE_QUADLET_DIR
    for path, text in texts.items():
        assert sh(host, f"cat {path}") == text, f"{path} was rewritten"
        assert [e for e in subids(text) if e[0] == "core"] == [("core", 100000, 65536)]
    assert exists(host, "/var/lib/systemd/linger/core")
    # linger starts core's systemd instance, reachable without a login session
    deadline = time.monotonic() + 10
    while not exists(host, f"/run/user/{CORE_UID}/systemd/private") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert show(host, "default.target")["ActiveState"] == "active"


# --------------------------------------------------------------------------------------------------------------------
# quadlet, rootless


def web_task(greeting: str, **extra: Any) -> dict[str, Any]:
    return quadlet_task(
        "web",
        user="core",
        container={"image": IMAGE, "pull": "never", "network": "none", "environment": {"GREETING": greeting}, "exec": SLEEPER},
        unit={"description": "lab web"},
        **extra,
    )


def test_quadlet_rootless_container_lifecycle(lab: Lab, host: HostAccess) -> None:
    path = f"{CORE_QUADLET_DIR}/web.container"
    linger = rootless_task("core")

    # drift: no unit. Check mode shows the whole file and changes nothing.
    before = snapshot(host)
    run = play(lab, [linger, web_task("v1")], check=True)
    assert run.ok, run.explain()
    result = only(run, "web")
    assert result.changed and result.result["actions"] == ["write", "daemon-reload", "start"]
    diff = file_diff(result)
    assert diff["before"] == "" and diff["before_header"] == f"{path} (absent)"
    assert f"Image={IMAGE}\n" in diff["after"] and "Environment=GREETING=v1\n" in diff["after"]
    assert result.result["validated"] is True and result.result["generator"] == GENERATOR
    assert_unchanged(before, snapshot(host))
    assert show(host, "web.service")["LoadState"] == "not-found"

    # apply: validated by the real generator, written, reloaded, started; the second run restarts nothing
    run = converged(lab, [linger, web_task("v1")], lambda: invocation(host, "web.service"))
    result = only(run, "web").result
    assert result["actions"] == ["write", "daemon-reload", "start"]
    assert result["validated"] is True and result["generator"] == GENERATOR
    assert result["service"] == "web.service" and result["scope"] == "user" and result["path"] == path
    assert sh(host, f"stat -c '%U:%G %a' {path}").strip() == "core:core 644"
    assert sh(host, f"cat {path}") == file_diff(only(run, "web"))["after"]
    # running under core's systemd instance with no login session of core (linger), then also seen over SSH as core
    assert core_login_sessions(host) == [], "core has a login session: the test could not tell linger from a session"
    state = show(host, "web.service")
    assert state["ActiveState"] == "active" and state["SubState"] == "running", state
    assert active_as_core(host, "web.service") == ["active"]
    assert core_login_sessions(host) == []
    assert show(host, "web.service")["InvocationID"] == state["InvocationID"], "the SSH session's end touched it"
    assert sh(host, "podman exec systemd-web sh -c 'echo $GREETING'", user="core").strip() == "v1"

    # drift: a changed option. Check mode reports the change, restarts nothing, writes nothing.
    before = snapshot(host)
    run = play(lab, [linger, web_task("v2")], check=True)
    assert run.ok, run.explain()
    result = only(run, "web")
    assert result.changed and result.result["actions"] == ["write", "daemon-reload", "restart"]
    diff = file_diff(result)
    assert "Environment=GREETING=v1\n" in diff["before"] and "Environment=GREETING=v1\n" not in diff["after"]
    assert "Environment=GREETING=v2\n" in diff["after"]
    assert diff["before"].replace("GREETING=v1", "GREETING=v2") == diff["after"]
    assert_unchanged(before, snapshot(host))
    assert show(host, "web.service")["InvocationID"] == state["InvocationID"]

    # applied: restarted (a new invocation), then stable
    run = converged(lab, [linger, web_task("v2")], lambda: invocation(host, "web.service"))
    assert only(run, "web").result["actions"] == ["write", "daemon-reload", "restart"]
    changed = show(host, "web.service")
    assert changed["ActiveState"] == "active" and changed["InvocationID"] != state["InvocationID"]
    assert active_as_core(host, "web.service") == ["active"]
    assert sh(host, "podman exec systemd-web sh -c 'echo $GREETING'", user="core").strip() == "v2"

    # absent: check mode first, then stop, remove, reload; twice
    absent = [quadlet_task("web", user="core", state="absent")]
    before = snapshot(host)
    run = play(lab, absent, check=True)
    assert run.ok, run.explain()
    result = only(run, "web")
    assert result.changed and result.result["actions"] == ["stop", "remove", "daemon-reload"]
    diff = file_diff(result)
    assert "Environment=GREETING=v2\n" in diff["before"] and diff["after"] == ""
    assert diff["after_header"] == f"{path} (absent)"
    assert_unchanged(before, snapshot(host))
    assert show(host, "web.service")["InvocationID"] == changed["InvocationID"]

    run = converged(lab, absent)
    assert only(run, "web").result["actions"] == ["stop", "remove", "daemon-reload"]
    assert not exists(host, path)
    assert show(host, "web.service")["LoadState"] == "not-found", "the user's instance was not reloaded"
    assert sh(host, "podman ps -a --format '{{.Names}}'", user="core").split().count("systemd-web") == 0


def pod_tasks(web_port: int = 8080) -> list[dict[str, Any]]:
    serve = f"trap 'exit 0' TERM; httpd -f -p {web_port} -h /data & wait"
    write = "echo hello > /data/greeting; trap 'exit 0' TERM; sleep infinity & wait"
    member = {"image": IMAGE, "pull": "never", "pod": "labpod.pod", "volume": ["labdata.volume:/data"]}
    return [
        rootless_task("core"),
        quadlet_task("labnet", kind="network", user="core", network={"label": {"app": "lab"}}),
        quadlet_task("labdata", kind="volume", user="core", volume={"label": {"app": "lab"}}),
        quadlet_task("labpod", kind="pod", user="core", pod={"network": "pasta"}),
        quadlet_task("labpod-writer", user="core", container={**member, "exec": ["sh", "-c", write]}),
        quadlet_task("labpod-web", user="core", container={**member, "exec": ["sh", "-c", serve]}),
    ]


POD_SERVICES = ["labnet-network.service", "labdata-volume.service", "labpod-pod.service"]
POD_SERVICES += ["labpod-writer.service", "labpod-web.service"]


def fetch_in_pod(host: HostAccess, port: int) -> str:
    """From the writer container, the web container's page (same pod network, same volume)."""
    command = f"podman exec systemd-labpod-writer wget -qO- http://127.0.0.1:{port}/greeting"
    deadline = time.monotonic() + 15
    while True:
        done = host.run(["sh", "-c", command], user="core")
        if done.returncode == 0 or time.monotonic() > deadline:
            return done.stdout
        time.sleep(0.5)


def test_quadlet_pod_with_two_containers_a_volume_and_a_network(lab: Lab, host: HostAccess) -> None:
    """A .network, a .volume, a .pod and two member containers, all rootless: every service runs, the members
    share the pod's network (one reaches the other on 127.0.0.1) and the named volume (one writes, the other serves).
    The .network unit creates its network but the pod uses pasta: a container attached to a netavark bridge fails in
    the lab (``netavark: Sysctl error: Read-only file system``, nspawn's read-only /proc/sys)."""
    run = converged(lab, pod_tasks(), lambda: invocation(host, *POD_SERVICES))
    for name in ("labnet", "labdata", "labpod", "labpod-writer", "labpod-web"):
        assert only(run, name).result["validated"] is True, name
    assert active_as_core(host, *POD_SERVICES) == ["active"] * len(POD_SERVICES)
    names = sh(host, "podman ps --format '{{.Names}} {{.PodName}}'", user="core").splitlines()
    assert "systemd-labpod-writer systemd-labpod" in names and "systemd-labpod-web systemd-labpod" in names
    assert sh(host, "podman volume ls --format '{{.Name}}'", user="core").split().count("systemd-labdata") == 1
    assert host.run(["podman", "network", "exists", "systemd-labnet"], user="core").returncode == 0
    assert fetch_in_pod(host, 8080).strip() == "hello"
    invocations = {unit: show(host, unit)["InvocationID"] for unit in POD_SERVICES}

    # drift in one member: check mode reports only that unit and touches nothing
    before = snapshot(host)
    run = play(lab, pod_tasks(web_port=8081), check=True)
    assert run.ok, run.explain()
    assert [t.task for t in run.changed_tasks()] == ["labpod-web"]
    diff = file_diff(only(run, "labpod-web"))
    assert "-p 8080" in diff["before"] and "-p 8081" in diff["after"]
    assert_unchanged(before, snapshot(host))
    assert {unit: show(host, unit)["InvocationID"] for unit in POD_SERVICES} == invocations

    # tidy up: members first, then what they use; twice
    absent = [
        quadlet_task(name, kind=kind, user="core", state="absent")
        for name, kind in (
            ("labpod-web", "container"),
            ("labpod-writer", "container"),
            ("labpod", "pod"),
            ("labdata", "volume"),
            ("labnet", "network"),
        )
    ]
    converged(lab, absent)
    assert sh(host, f"ls -A {CORE_QUADLET_DIR}").split() == []
    for unit in POD_SERVICES:
        assert show(host, unit)["LoadState"] == "not-found", unit


def test_quadlet_check_mode_of_a_new_pod_and_its_member(lab: Lab, host: HostAccess) -> None:
    tasks = [
        quadlet_task("newpod", kind="pod", user="core", pod={"network": "pasta"}),
        quadlet_task("newpod-member", user="core", container={"image": IMAGE, "pull": "never", "pod": "newpod.pod"}),
    ]
    before = snapshot(host)
    run = play(lab, tasks, check=True)
    assert_unchanged(before, snapshot(host))
    assert run.ok, only(run, "newpod-member").result.get("msg")
    assert [t.task for t in run.changed_tasks()] == ["newpod", "newpod-member"]


# --------------------------------------------------------------------------------------------------------------------
# quadlet, rootful


def test_quadlet_system_scope_container(lab: Lab, host: HostAccess) -> None:
    path = f"{SYSTEM_QUADLET_DIR}/labsys.container"
    task = quadlet_task("labsys", container={"image": IMAGE, "pull": "never", "network": "none", "exec": SLEEPER})

    before = snapshot(host)
    run = play(lab, [task], check=True)
    assert run.ok, run.explain()
    result = only(run, "labsys")
    assert result.changed and result.result["scope"] == "system" and result.result["path"] == path
    diff = file_diff(result)
    assert diff["before"] == "" and "Network=none\n" in diff["after"]
    assert_unchanged(before, snapshot(host))

    run = converged(lab, [task], lambda: invocation(host, "labsys.service", user=False))
    result = only(run, "labsys").result
    assert result["actions"] == ["write", "daemon-reload", "start"]
    assert result["commands"][0] == [GENERATOR, "-dryrun"], "a system unit is validated without -user"
    assert sh(host, f"stat -c '%U:%G %a' {path}").strip() == "root:root 644"
    state = show(host, "labsys.service", user=False)
    assert state["ActiveState"] == "active" and state["SubState"] == "running", state

    absent = [quadlet_task("labsys", state="absent")]
    before = snapshot(host)
    run = play(lab, absent, check=True)
    assert run.ok and only(run, "labsys").changed, run.explain()
    assert file_diff(only(run, "labsys"))["after"] == ""
    assert_unchanged(before, snapshot(host))
    converged(lab, absent)
    assert not exists(host, path)
    assert show(host, "labsys.service", user=False)["LoadState"] == "not-found"


# --------------------------------------------------------------------------------------------------------------------
# rejections


def generator_message(host: HostAccess, unit_file: str, text: str) -> str:
    """What the real generator says about ``text`` on its own, run by hand in a scratch dir on the host."""
    script = (
        'd=$(mktemp -d) && cat > "$d"/' + shlex.quote(unit_file) + " && "
        f'QUADLET_UNIT_DIRS="$d" {GENERATOR} -dryrun -user 2>&1 >/dev/null; rm -rf "$d"'
    )
    done = host.run(["sh", "-c", script], stdin=text)
    lines = [line for line in done.stdout.splitlines() if "converting" in line and unit_file in line]
    assert lines, done.stdout
    return re.sub(r"^quadlet-generator\[\d+\]: ", "", lines[-1]).strip()


def test_generator_rejection_fails_with_its_message_and_writes_nothing(lab: Lab, host: HostAccess) -> None:
    missing_pod = f"[Container]\nImage={IMAGE}\nPull=never\nPod=missing.pod\n"
    tasks = [
        {**quadlet_task("badpod", user="core", content=missing_pod), "ignore_errors": True},
        {
            **quadlet_task("badnet", user="core", container={"image": IMAGE, "pull": "never", "network": "missing.network"}),
            "ignore_errors": True,
        },
        {**quadlet_task("badsys", content=missing_pod), "ignore_errors": True},
    ]
    expected = {
        "badpod": generator_message(host, "badpod.container", missing_pod),
        "badnet": generator_message(host, "badnet.container", f"[Container]\nImage={IMAGE}\nNetwork=missing.network\n"),
    }
    expected["badsys"] = expected["badpod"].replace("badpod", "badsys")
    assert "missing.pod" in expected["badpod"] and "missing.network" in expected["badnet"]

    for check in (True, False):
        before = snapshot(host)
        run = play(lab, tasks, check=check)
        for name, message in expected.items():
            result = only(run, name)
            if check:
                # In check mode a referenced unit may be missing only because an earlier task of the same run did
                # not write it: the module predicts the change, unvalidated, and says why in a warning.
                assert result.status == "ok" and result.changed and result.result["validated"] is False, (name, result.result)
                assert any(message in str(warning) for warning in result.result.get("warnings", [])), (name, result.result)
                continue
            assert result.status == "failed", (check, name, result.result)
            msg = result.result["msg"]
            assert msg.startswith(f"the Quadlet generator {GENERATOR} rejected {name}.container: "), msg
            assert message in msg, (msg, message)
        assert_unchanged(before, snapshot(host))
        assert not exists(host, f"{CORE_QUADLET_DIR}/badpod.container")
        assert not exists(host, f"{SYSTEM_QUADLET_DIR}/badsys.container")


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("immutable.hosts.quadlet", {"name": "../evil", "user": "core", "container": {"image": IMAGE}}, "../evil"),
    ("immutable.hosts.quadlet", {"name": "evil/x", "container": {"image": IMAGE}}, "evil/x"),
    ("immutable.hosts.quadlet", {"name": "k", "kind": "nonsense"}, "value of kind must be one of"),
    ("immutable.hosts.quadlet", {"name": "k", "user": "core", "container": {"image": IMAGE, "bogus_key": 1}}, "bogus_key"),
    (
        "immutable.hosts.quadlet",
        {
            "name": "k",
            "user": "core",
            "container": {"image": IMAGE, "environment": {"A": "x\n[Service]\nExecStartPre=/bin/evil"}},
        },
        "contains U+000A (LINE FEED)",
    ),
    (
        "immutable.hosts.quadlet",
        {"name": "k", "user": "core", "container": {"image": IMAGE, "container_name": "x\u2028ServiceName=sshd"}},
        "contains U+2028 (LINE SEPARATOR)",
    ),
    (
        "immutable.hosts.quadlet",
        {"name": "k", "user": "core", "content": f"[Container]\nImage={IMAGE}\nBogus=1\n"},
        "unsupported key 'Bogus' in the [Container] section",
    ),
    (
        "immutable.hosts.quadlet",
        {"name": "k", "user": "core", "content": f"[Container]\nImage={IMAGE}\n", "container": {"image": IMAGE}},
        "content excludes the section options (container)",
    ),
    (
        "immutable.hosts.quadlet",
        {"name": "k", "user": "nosuchuser", "container": {"image": IMAGE}},
        "user 'nosuchuser' does not exist",
    ),
    ("immutable.hosts.quadlet", {"name": "k", "user": "root", "container": {"image": IMAGE}}, "is root"),
    ("immutable.hosts.rootless_user", {"name": "nosuchuser"}, "user 'nosuchuser' does not exist"),
    ("immutable.hosts.rootless_user", {"name": "root"}, "root runs rootful containers"),
    ("immutable.hosts.rootless_user", {"name": "core", "subuid_count": 0}, "subuid_count must be between 1 and"),
    ("immutable.hosts.rootless_user", {"name": "Bad:Name", "create": True}, "may not contain '/' or ':'"),
]


def test_bad_inputs_fail_with_the_module_message_and_change_nothing(lab: Lab, host: HostAccess) -> None:
    tasks = [
        {"name": f"bad {index}", module: args, "ignore_errors": True} for index, (module, args, _message) in enumerate(BAD_INPUTS)
    ]
    before = snapshot(host)
    run = play(lab, tasks)
    for index, (_module, args, message) in enumerate(BAD_INPUTS):
        result = only(run, f"bad {index}")
        assert result.status == "failed" and not result.changed, (args, result.result)
        assert message in result.result["msg"], (args, result.result["msg"])
    after = snapshot(host)
    assert_unchanged(before, after)
    assert snapshot_hash(before) == snapshot_hash(after)
    assert host.run(["id", "Bad:Name"]).returncode != 0


# --------------------------------------------------------------------------------------------------------------------
# a failed start


def test_a_failed_start_reports_the_change_it_made(lab: Lab, host: HostAccess) -> None:
    path = f"{CORE_QUADLET_DIR}/nostart.container"
    task = quadlet_task("nostart", user="core", container={"image": "localhost/lab/missing:latest", "pull": "never"})
    try:
        run = play(lab, [{**task, "ignore_errors": True}])
        result = only(run, "nostart")
        assert result.status == "failed", result.result
        assert "systemctl --user start nostart.service failed" in result.result["msg"]
        assert exists(host, path), "the unit was written before the start failed"
        assert result.changed, "the file was written and the instance reloaded, yet changed=false"
    finally:
        cleanup(lab, host, [quadlet_task("nostart", user="core", state="absent")])


def cleanup(lab: Lab, host: HostAccess, tasks: list[dict[str, Any]]) -> None:
    run = play(lab, tasks)
    assert run.ok, run.explain()
    host.run(
        ["runuser", "-u", "core", "--", "env", f"XDG_RUNTIME_DIR=/run/user/{CORE_UID}", "systemctl", "--user", "reset-failed"]
    )


# --------------------------------------------------------------------------------------------------------------------
# root acting in core's home: the attacks of the security audit (issue 12), done by core over its own SSH login


ATTACK_UNIT = {"image": IMAGE, "pull": "never", "network": "none", "exec": SLEEPER, "podman_args": ["--privileged"]}


def test_a_linked_config_directory_never_becomes_a_system_unit(lab: Lab, host: HostAccess) -> None:
    """core replaces ~/.config/containers with a link to /etc/containers: before, the rootless task wrote
    /etc/containers/systemd/sectest.container, a system unit owned by core that root's generator runs."""
    sh(host, f"mkdir -p {SYSTEM_QUADLET_DIR}")
    sh(
        host,
        "mkdir -p ~/.config && rm -rf ~/.config/containers.saved && "
        "(test ! -e ~/.config/containers || mv ~/.config/containers ~/.config/containers.saved) && "
        "ln -s /etc/containers ~/.config/containers",
        user="core",
    )
    before = snapshot(host)
    try:
        for check in (True, False):
            run = play(lab, [quadlet_task("sectest", user="core", container=ATTACK_UNIT) | {"ignore_errors": True}], check=check)
            result = only(run, "sectest")
            assert result.status == "failed" and not result.changed, result.result
            assert "/home/core/.config/containers is a symbolic link (to /etc/containers)" in result.result["msg"]
            assert not exists(host, f"{SYSTEM_QUADLET_DIR}/sectest.container")
        assert_unchanged(before, snapshot(host))
    finally:
        sh(
            host,
            "rm -f ~/.config/containers && (test ! -e ~/.config/containers.saved || "
            "mv ~/.config/containers.saved ~/.config/containers)",
            user="core",
        )
    # The legitimate task still works, as core's own file.
    legit = {"image": IMAGE, "pull": "never", "network": "none", "exec": SLEEPER}
    first = converged(lab, [quadlet_task("sectest", user="core", container=legit)])
    assert only(first, "sectest").changed
    assert sh(host, f"stat -c '%U %a' {CORE_QUADLET_DIR}/sectest.container").split() == ["core", "644"]
    assert not exists(host, f"{SYSTEM_QUADLET_DIR}/sectest.container")
    assert play(lab, [quadlet_task("sectest", user="core", state="absent")]).ok


def test_a_unit_linked_to_shadow_is_never_read_or_shown(lab: Lab, host: HostAccess) -> None:
    """Before: a unit file that is a link to /etc/shadow was read as root and its lines appeared in the diff."""
    sh(host, f"mkdir -p {CORE_QUADLET_DIR} && ln -sf /etc/shadow {CORE_QUADLET_DIR}/leak.container", user="core")
    shadow = sh(host, "cat /etc/shadow")
    secret = next(line.split(":")[1] for line in shadow.splitlines() if line.startswith("root:"))
    try:
        for check in (True, False):
            run = play(lab, [quadlet_task("leak", user="core", container=ATTACK_UNIT) | {"ignore_errors": True}], check=check)
            result = only(run, "leak")
            assert result.status == "failed" and "leak.container is a symbolic link" in result.result["msg"]
            assert "root:" not in run.stdout and (len(secret) < 2 or secret not in run.stdout + json.dumps(result.result))
        assert sh(host, "stat -c '%U %a' /etc/shadow").split()[0] == "root"
    finally:
        sh(host, f"rm -f {CORE_QUADLET_DIR}/leak.container", user="core")


def test_a_unit_named_like_a_vendor_unit_is_refused(lab: Lab, host: HostAccess) -> None:
    """A system Quadlet unit named ssh would generate ssh.service and shadow OpenSSH's unit."""
    run = play(lab, [quadlet_task("ssh", container={"image": IMAGE, "pull": "never", "exec": SLEEPER}) | {"ignore_errors": True}])
    result = only(run, "ssh")
    assert result.status == "failed" and "already provides" in result.result["msg"], result.result
    assert "ssh.service" in result.result["msg"] and not exists(host, f"{SYSTEM_QUADLET_DIR}/ssh.container")
