"""The lab as a Python API: ``Lab(state_dir)`` brings simulated immutable hosts up and down, runs commands on them and
drives the simulators.  The CLI (``immutable-hosts lab``), the lab tests, the bench and the demo are its clients.

    lab = Lab("/tmp/my-lab")
    lab.up(hosts=3, profile="silverblue")      # idempotent; returns the host names
    lab.exec("silverblue-1", ["rpm-ostree", "status"]).stdout
    lab.inventory                              # the Ansible inventory (a Path)
    lab.down()

Every failure the caller can act on is a :class:`LabError` with a message.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from immutable_hosts.lab import (
    flatpak_content,
    inventory,
    oci_content,
    ostree_content,
    pull_content,
    registry,
    server,
    sim,
    ssh,
)
from immutable_hosts.lab.hosts import Host, ensure_inotify_instances, restore_inotify_instances
from immutable_hosts.lab.image import Image, remove_tree
from immutable_hosts.lab.network import MAX_HOSTS, index_is_free, machine_lock
from immutable_hosts.lab.state import PROFILES, SERVER_URL, HostRecord, LabState, resolve_state_dir

SIM_ACTIONS = ("busy", "driver", "lock-finalization")
BOOT_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
# A host name prefix: it becomes a directory name, a YAML key, an SSH host alias and part of kernel object names.
PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}\Z")

# progress(title) -> report(message): one phase of a long operation, and its messages.
Progress = Callable[[str], Callable[[str], None]]


class LabError(Exception):
    """What the lab cannot do, and why; ``str()`` is the message for the user."""


def quiet_progress(_title: str) -> Callable[[str], None]:
    return lambda _message: None


def child_env() -> dict[str, str]:
    """Environment for the lab's own long-running processes: they import this package."""
    src = str(Path(__file__).resolve().parents[2])
    paths = [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def check_machine() -> None:
    if os.geteuid() != 0:
        raise LabError("lab: must run as root (namespaces, mounts, systemd-nspawn)")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "ip", "ssh", "zstd") if not shutil.which(tool)]
    if missing:
        raise LabError(
            f"lab: missing tools: {' '.join(missing)} "
            "(apt-get install debootstrap systemd-container iproute2 openssh-client zstd)"
        )


def check_prefix(value: str) -> str:
    if not PREFIX_RE.match(value) or value.endswith("-"):
        raise LabError(
            f"{value!r} is not a host name prefix: lower-case letters, digits and '-', starting with a letter, "
            "at most 30 characters (it becomes a directory and a host name)"
        )
    return value


def is_flatpak_ref(target: str) -> bool:
    """Flatpak refs: ``app/…``, ``runtime/…`` or a bare reverse-DNS id; OSTree refs and images have slashes."""
    if target.startswith(("app/", "runtime/")):
        return True
    return "/" not in target and ":" not in target and target.count(".") >= 2


class Lab:
    """One lab: its state directory, its hosts, its image server."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, progress: Progress | None = None) -> None:
        self.state_dir = resolve_state_dir(state_dir)
        self.progress = progress or quiet_progress
        self.image_seconds = 0.0  # what the last up() spent on the image
        self.boot_states: dict[str, str] = {}  # and how each host finished booting ("running", "degraded")

    def _state(self) -> LabState:
        return LabState(self.state_dir)

    # --- up and down -----------------------------------------------------------------------------------------

    def up(self, hosts: int = 1, profile: str = "silverblue", name: str | None = None, first: int = 1) -> list[str]:
        """Boot ``hosts`` hosts named ``NAME-FIRST``… (``name`` defaults to the profile, ``first`` to 1), building the
        image and the image server's content when missing; hosts that run already are left as they are.  Writes the
        inventory and returns the host names."""
        check_machine()
        if profile not in PROFILES:
            raise LabError(f"lab: unknown profile {profile!r} (profiles: {', '.join(PROFILES)})")
        if not 1 <= hosts <= MAX_HOSTS:
            raise LabError(f"lab: hosts is between 1 and {MAX_HOSTS}, not {hosts}")
        prefix = check_prefix(name or profile)
        if first < 1:
            raise LabError(f"lab: the first host number is 1 or more, not {first}")
        names = [f"{prefix}-{i}" for i in range(first, first + hosts)]
        state = self._state()
        with state.locked():
            image = Image.current(state.image_dir)
            image.prune_others(keep={r.image for r in state.hosts.values()})
            self.image_seconds = image.ensure(self.progress(f"image {image.key}"))
            public_key = (ssh.ensure_client_key(state.ssh_dir).with_suffix(".pub")).read_text()
            build_server_content(state, self.progress("image server content"))
            tools = registry.Tools(image.rootfs)
            self.progress("registry keys and certificates")("")
            registry.ensure_material(state, tools)
            registry.serve_public_keys(state)
            registry.write_spec(state, tools)
            wanted = claim_addresses(state, names, profile, image.key)
            report = self.progress(f"preparing {len(wanted)} host(s)")
            # Provisioning runs on separate roots; its helpers are subprocess-bound, so threads are enough.
            run_parallel(lambda h: prepare_host(h, public_key), wanted, report)
            write_known_hosts(state)
            server.update(state, [str(h.net.machine_address) for h in lab_hosts(state)], sys.executable, child_env())
            publish_registry(state, tools, self.progress("registry: push and sign"))
            report = self.progress(f"booting {len(wanted)} host(s)")
            ensure_inotify_instances(state, len(state.hosts))
            for host in wanted:
                if not host.supervisor_running():
                    host.start(sys.executable, child_env())
            state.save()
            deadline = time.monotonic() + BOOT_TIMEOUT + 2 * len(wanted)
            self.boot_states = run_parallel(lambda h: wait_ready(h, deadline), wanted, report)
            inventory.write(state)
        return names

    def down(self, purge: bool = False) -> int:
        """Stop every host and remove what the lab set up on the machine (and, with ``purge``, the image cache, keys
        and server content); returns how many hosts were stopped."""
        if os.geteuid() != 0:
            raise LabError("lab: must run as root")
        state = self._state()
        if not state.root.exists():
            return 0
        with state.locked():
            count = len(state.hosts)
            teardown(state)
        if purge:
            remove_tree(state.root)
        return count

    # --- what there is ----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """{state_dir, server (listening?), registry: {running, names, ca, keys}, hosts: [{name, profile, address,
        state, boots}]}."""
        state = self._state()
        return {
            "state_dir": str(state.root),
            "server": server.running(state),
            "registry": registry.describe(state, server.running(state) and registry.ports_file(state).exists()),
            "hosts": [host_status(h) for h in lab_hosts(state)],
        }

    @property
    def hosts(self) -> list[str]:
        return [h.name for h in lab_hosts(self._state())]

    @property
    def inventory(self) -> Path:
        path = self._state().inventory_file
        if not path.exists():
            raise LabError("lab: no inventory; run `immutable-hosts lab up` first")
        return path

    # --- on the hosts -----------------------------------------------------------------------------------------

    def ssh_argv(self, host: str, command: Sequence[str], user: str = "root") -> list[str]:
        """The ssh command line that runs ``command`` on ``host`` as ``user``."""
        state = self._state()
        found = find_host(state, host)
        return ssh.remote_argv(
            state.ssh_dir / ssh.CLIENT_KEY, state.ssh_dir / "known_hosts", user, str(found.net.host_address), list(command)
        )

    def exec(
        self,
        host: str,
        command: Sequence[str],
        user: str = "root",
        capture: bool = True,
        check: bool = False,
        timeout: float | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (an argument list) on ``host`` over SSH."""
        if not command:
            raise LabError("lab exec: give a command")
        done = subprocess.run(self.ssh_argv(host, command, user), capture_output=capture, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise LabError(f"{host}: {' '.join(command)} exited {done.returncode}: {(done.stderr or '').strip()[-2000:]}")
        return done

    def sim(self, host: str, action: str, *args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
        """A simulator action on a host: ``busy SECONDS [TITLE]``, ``driver NAME`` or ``lock-finalization``."""
        if action not in SIM_ACTIONS:
            raise LabError(f"lab sim: unknown action {action!r} (actions: {', '.join(SIM_ACTIONS)})")
        return self.exec(host, sim.host_command(action, *args), capture=capture)

    def publish(self, target: str) -> Any:
        """A new commit of an OSTree ref, a Flatpak ref or an image on the image server; returns what was published."""
        state = self._state()
        if not state.server_dir.is_dir():
            raise LabError(f"lab sim publish: the lab has no image server content in {state.server_dir}; run lab up first")
        try:
            with state.locked():
                module: Any = flatpak_content if is_flatpak_ref(target) else ostree_content
                published = module.publish(state.server_dir, target)
                if isinstance(published, dict) and published.get("kind") == "image" and server.running(state):
                    # A new digest is pushed and signed at once; with the lab down, the next `up` pushes it.
                    publish_registry(state, registry.Tools(running_rootfs(state)), quiet_progress(""))
                return published
        except (KeyError, ValueError, flatpak_content.FlatpakContentError) as exc:
            raise LabError(f"lab sim publish: {exc.args[0] if exc.args else exc}") from None

    # --- pull mode ----------------------------------------------------------------------------------------------

    def pull_index(self, requirement: str | None = None) -> str:
        """Serve a package index (PEP 503) of ``requirement`` (default: the machine's own ansible-core, pinned) and
        its dependencies, for the hosts' Python; returns its URL as hosts see it."""
        state = self._state()
        if not state.server_dir.is_dir():
            raise LabError("lab pull index: the lab has no image server content; run lab up first")
        try:
            with state.locked():
                python = pull_content.host_python(running_rootfs(state))
                wanted = requirement or pull_content.controller_requirement()
                wheels = pull_content.download_wheels(state.image_dir, wanted, python, self.progress("pull index"))
                return pull_content.build_index(state.server_dir, wheels)
        except pull_content.PullContentError as exc:
            raise LabError(f"lab pull index: {exc}") from None

    def pull_repo(self, name: str, tree: str | os.PathLike[str], message: str, sign: bool = True) -> dict[str, str]:
        """Commit ``tree`` to the Git repository ``name`` the image server serves (signed with the lab's key unless
        ``sign`` is false); returns its ``url`` as hosts see it, the ``commit`` and the signing ``key`` (armored)."""
        state = self._state()
        if not state.server_dir.is_dir():
            raise LabError("lab pull repo: the lab has no image server content; run lab up first")
        try:
            with state.locked():
                return pull_content.publish_repo(state, name, Path(tree), message, sign=sign)
        except pull_content.PullContentError as exc:
            raise LabError(f"lab pull repo: {exc}") from None


# --- the steps ----------------------------------------------------------------------------------------------------


def lab_hosts(state: LabState) -> list[Host]:
    return [Host(state, r) for r in sorted(state.hosts.values(), key=lambda r: r.index)]


def find_host(state: LabState, name: str) -> Host:
    if name not in state.hosts:
        known = ", ".join(sorted(state.hosts)) or "none"
        raise LabError(f"lab: no host named {name!r} (hosts: {known})")
    return Host(state, state.hosts[name])


def host_status(host: Host) -> dict[str, Any]:
    return {
        "name": host.name,
        "profile": host.record.profile,
        "address": str(host.net.host_address),
        "state": host.state_name(),
        "boots": host.boots(),
    }


def claim_addresses(state: LabState, names: list[str], profile: str, image_key: str) -> list[Host]:
    """Plan the new hosts and create their networks under the machine's lab lock, so two labs that come up at the
    same time (each under its own state lock) never take the same address range."""
    with machine_lock():
        plan_new_hosts(state, names, profile, image_key)
        state.save()
        wanted = [Host(state, state.hosts[n]) for n in names]
        for host in wanted:
            host.net.create()
    return wanted


def plan_new_hosts(state: LabState, names: list[str], profile: str, image_key: str) -> list[HostRecord]:
    ours = {Host(state, r).net.veth for r in state.hosts.values()}
    taken: set[int] = set()
    created = []
    for name in names:
        existing = state.hosts.get(name)
        if existing is not None:
            if existing.profile != profile:
                raise LabError(f"lab: host {name} exists with profile {existing.profile}, not {profile}")
            continue
        index = state.free_index(taken)
        while not index_is_free(state.lab_id, index, ours):
            taken.add(index)
            index = state.free_index(taken)
        if index >= MAX_HOSTS:
            raise LabError("lab: no free address range left")
        taken.add(index)
        record = HostRecord(name=name, index=index, profile=profile, image=image_key)
        state.hosts[name] = record
        created.append(record)
    return created


def build_server_content(state: LabState, report: Callable[[str], None]) -> None:
    state.server_dir.mkdir(parents=True, exist_ok=True)
    report("OSTree repo and OCI catalogue")
    ostree_content.build_server(state.server_dir)
    report("Flatpak repo")
    flatpak_content.build_server(state.server_dir, SERVER_URL)
    report("OCI archive")
    oci_content.build_server(state.server_dir)


def running_rootfs(state: LabState) -> Path:
    """The tree of the image the lab's hosts run (the current one may not be built yet, after a change to the lab)."""
    keys = [record.image for record in state.hosts.values()]
    for key in keys:
        rootfs = state.image_dir / key / "rootfs"
        if rootfs.is_dir():
            return rootfs
    return Image.current(state.image_dir).rootfs


def publish_registry(state: LabState, tools: registry.Tools, report: Callable[[str], None]) -> None:
    """Push and sign what the registry does not hold yet (all of it on a new lab, then only what ``publish`` adds)."""
    try:
        registry.loopback_ports(state)
        registry.publish_all(
            state, tools, ostree_content.catalogue(state.server_dir), ostree_content.layout_path(state.server_dir), report
        )
    except registry.RegistryError as exc:
        raise LabError(str(exc)) from exc


def prepare_host(host: Host, public_key: str) -> None:
    host.net.create()
    host.mount()
    if not host.provisioned_stamp.exists():
        try:
            host.provision(public_key)
        except BaseException:
            host.discard_root()  # a half-provisioned root would make the next `up` build on a broken host
            raise


def wait_ready(host: Host, deadline: float) -> str:
    """Wait for SSH, then for systemd to finish booting; returns the system state ("running"/"degraded")."""
    address = str(host.net.host_address)
    if not ssh.wait_for_port(address, 22, deadline):
        raise LabError(f"{host.name}: no SSH on {address}; see {host.dir / 'console.log'}")
    state = host.state
    argv = ssh.remote_argv(
        state.ssh_dir / ssh.CLIENT_KEY, state.ssh_dir / "known_hosts", "root", address,
        ["systemctl", "is-system-running", "--wait"],
    )  # fmt: skip
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LabError(f"{host.name}: boot did not finish; see {host.dir / 'console.log'}")
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=remaining)
        except subprocess.TimeoutExpired:
            continue
        status = done.stdout.strip()
        if status in ("running", "degraded"):
            return status
        time.sleep(0.2)


def write_known_hosts(state: LabState) -> None:
    entries = {}
    for host in lab_hosts(state):
        key = ssh.host_public_key(host.merged) if host.mounted() else None
        if key:
            entries[host.name] = (str(host.net.host_address), key)
    ssh.write_known_hosts(state.ssh_dir / "known_hosts", entries)


def run_parallel(func: Callable[[Host], Any], hosts: list[Host], report: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    workers = max(2, os.cpu_count() or 2) if len(hosts) > 1 else 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers * 4, 32)) as pool:
        futures = {pool.submit(func, host): host for host in hosts}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            results[futures[future].name] = future.result()
            report(f"{done}/{len(hosts)}")
    return results


def teardown(state: LabState) -> None:
    ssh.close_control_masters(state.control_dir)
    hosts = lab_hosts(state)
    for host in hosts:
        host.request_stop()
    deadline = time.monotonic() + STOP_TIMEOUT
    for host in hosts:
        host.wait_stopped(max(0.0, deadline - time.monotonic()))
        host.unmount()
        host.net.remove()
        host.remove_runtime_leftovers()
        host.remove_files()
        del state.hosts[host.name]
        state.save()
    server.stop(state)
    restore_inotify_instances(state)
    remove_empty_dirs([Path("/run/systemd/nspawn/propagate"), Path("/run/systemd/nspawn/locks")])
    for leftover in (state.run_dir, state.hosts_dir, state.control_dir, state.inventory_file, state.ssh_dir / "known_hosts"):
        remove_tree(leftover)


def remove_empty_dirs(paths: list[Path]) -> None:
    """Directories nspawn creates but cannot remove; only removed when empty (another nspawn may use them)."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        Path("/run/systemd/nspawn").rmdir()
