"""``immutable-hosts lab …``: bring lab hosts up and down, inspect them, run commands and simulator actions.

``register(subparsers)`` adds the ``lab`` command to the main CLI; every leaf parser sets ``func(args) -> int``.
The module also runs on its own: ``python -m immutable_hosts.lab.cli up --hosts 2``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from immutable_hosts.lab import flatpak_content, inventory, oci_content, ostree_content, server, sim, ssh
from immutable_hosts.lab.hosts import Host, ensure_inotify_instances, restore_inotify_instances
from immutable_hosts.lab.image import Image, remove_tree
from immutable_hosts.lab.network import MAX_HOSTS, index_is_free
from immutable_hosts.lab.state import PROFILES, SERVER_URL, HostRecord, LabState, resolve_state_dir

SIM_ACTIONS = ("busy", "driver", "lock-finalization")
BOOT_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


# --- helpers -------------------------------------------------------------------------------------------


def console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def child_env() -> dict[str, str]:
    """Environment for the lab's own long-running processes: they import this package."""
    src = str(Path(__file__).resolve().parents[2])
    paths = [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def open_state(args: argparse.Namespace) -> LabState:
    return LabState(resolve_state_dir(getattr(args, "state_dir", None)))


def lab_hosts(state: LabState) -> list[Host]:
    return [Host(state, r) for r in sorted(state.hosts.values(), key=lambda r: r.index)]


def find_host(state: LabState, name: str) -> Host:
    if name not in state.hosts:
        known = ", ".join(sorted(state.hosts)) or "none"
        raise SystemExit(f"lab: no host named {name!r} (hosts: {known})")
    return Host(state, state.hosts[name])


def check_machine() -> None:
    if os.geteuid() != 0:
        raise SystemExit("lab: must run as root (namespaces, mounts, systemd-nspawn)")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "ip", "ssh", "zstd") if not shutil.which(tool)]
    if missing:
        raise SystemExit(
            f"lab: missing tools: {' '.join(missing)} "
            "(apt-get install debootstrap systemd-container iproute2 openssh-client zstd)"
        )


@contextmanager
def progress() -> Iterator[Callable[[str], Callable[[str], None]]]:
    """Yields ``phase(title) -> report(message)``; each phase is one line of a rich progress display."""
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console(), transient=False
    ) as bar:
        current: list[TaskID] = []

        def phase(title: str) -> Callable[[str], None]:
            if current:
                bar.update(current[-1], completed=1, total=1)
            task = bar.add_task(title, total=None)
            current.append(task)
            return lambda message: bar.update(task, description=f"{title}: {message}")

        yield phase
        if current:
            bar.update(current[-1], completed=1, total=1)


# --- up ------------------------------------------------------------------------------------------------


def plan_new_hosts(state: LabState, names: list[str], profile: str, image_key: str) -> list[HostRecord]:
    ours = {Host(state, r).net.veth for r in state.hosts.values()}
    taken: set[int] = set()
    created = []
    for name in names:
        existing = state.hosts.get(name)
        if existing is not None:
            if existing.profile != profile:
                raise SystemExit(f"lab: host {name} exists with profile {existing.profile}, not {profile}")
            continue
        index = state.free_index(taken)
        while not index_is_free(state.lab_id, index, ours):
            taken.add(index)
            index = state.free_index(taken)
        if index >= MAX_HOSTS:
            raise SystemExit("lab: no free address range left")
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
        raise RuntimeError(f"{host.name}: no SSH on {address}; see {host.dir / 'console.log'}")
    state = host.state
    argv = ssh.remote_argv(
        state.ssh_dir / ssh.CLIENT_KEY, state.ssh_dir / "known_hosts", "root", address,
        ["systemctl", "is-system-running", "--wait"],
    )  # fmt: skip
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"{host.name}: boot did not finish; see {host.dir / 'console.log'}")
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


def cmd_up(args: argparse.Namespace) -> int:
    check_machine()
    state = open_state(args)
    prefix = args.name or args.profile
    names = [f"{prefix}-{i}" for i in range(1, args.hosts + 1)]
    started = time.monotonic()
    with state.locked(), progress() as phase:
        image = Image.current(state.image_dir)
        image.prune_others(keep={r.image for r in state.hosts.values()})
        image_seconds = image.ensure(phase(f"image {image.key}"))
        public_key = (ssh.ensure_client_key(state.ssh_dir).with_suffix(".pub")).read_text()
        build_server_content(state, phase("image server content"))
        plan_new_hosts(state, names, args.profile, image.key)
        state.save()
        wanted = [Host(state, state.hosts[n]) for n in names]
        report = phase(f"preparing {len(wanted)} host(s)")
        # Provisioning runs on separate roots; H2/H3 helpers are subprocess-bound, so threads are enough.
        run_parallel(lambda h: prepare_host(h, public_key), wanted, report)
        write_known_hosts(state)
        server.update(state, [str(h.net.machine_address) for h in lab_hosts(state)], sys.executable, child_env())
        report = phase(f"booting {len(wanted)} host(s)")
        ensure_inotify_instances(state, len(state.hosts))
        for host in wanted:
            if not host.supervisor_running():
                host.start(sys.executable, child_env())
        state.save()
        deadline = time.monotonic() + BOOT_TIMEOUT + 2 * len(wanted)
        statuses = run_parallel(lambda h: wait_ready(h, deadline), wanted, report)
        path = inventory.write(state)
    degraded = sorted(n for n, s in statuses.items() if s != "running")
    console().print(
        f"lab: {len(wanted)} host(s) up in {time.monotonic() - started:.1f}s (image {image_seconds:.1f}s)"
        + (f" (degraded: {', '.join(degraded)})" if degraded else "")
    )
    print(path)
    return 0


# --- down ----------------------------------------------------------------------------------------------


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


def cmd_down(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise SystemExit("lab: must run as root")
    state = open_state(args)
    if not state.root.exists():
        return 0
    with state.locked():
        count = len(state.hosts)
        teardown(state)
    if args.purge:
        remove_tree(state.root)
    console().print(f"lab: {count} host(s) down" + (", state removed" if args.purge else ""))
    return 0


# --- status / inventory / exec -------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    state = open_state(args)
    if args.json:
        rows = [host_status(h) for h in lab_hosts(state)]
        print(json.dumps({"state_dir": str(state.root), "server": server.running(state), "hosts": rows}, indent=2))
        return 0
    table = Table("host", "profile", "address", "state", "boots", title=f"lab {state.root}")
    for host in lab_hosts(state):
        row = host_status(host)
        table.add_row(row["name"], row["profile"], row["address"], row["state"], str(row["boots"]))
    out = console()
    out.print(table)
    out.print(f"image server: {'listening' if server.running(state) else 'stopped'} (port {server.SERVER_PORT})")
    return 0


def host_status(host: Host) -> dict[str, Any]:
    return {
        "name": host.name,
        "profile": host.record.profile,
        "address": str(host.net.host_address),
        "state": host.state_name(),
        "boots": host.boots(),
    }


def cmd_inventory(args: argparse.Namespace) -> int:
    state = open_state(args)
    if not state.inventory_file.exists():
        raise SystemExit("lab: no inventory; run `immutable-hosts lab up` first")
    print(state.inventory_file)
    return 0


def run_on_host(state: LabState, name: str, command: list[str], user: str = "root") -> int:
    host = find_host(state, name)
    argv = ssh.remote_argv(
        state.ssh_dir / ssh.CLIENT_KEY, state.ssh_dir / "known_hosts", user, str(host.net.host_address), command
    )
    return subprocess.run(argv).returncode


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("lab exec: give a command after --")
    return run_on_host(open_state(args), args.host, command, args.user)


# --- sim -----------------------------------------------------------------------------------------------


def is_flatpak_ref(target: str) -> bool:
    """Flatpak refs: ``app/…``, ``runtime/…`` or a bare reverse-DNS id; OSTree refs and images have slashes."""
    if target.startswith(("app/", "runtime/")):
        return True
    return "/" not in target and ":" not in target and target.count(".") >= 2


def sim_publish(state: LabState, target: str) -> int:
    if not state.server_dir.is_dir():
        raise FileNotFoundError(state.server_dir)
    with state.locked():
        module: Any = flatpak_content if is_flatpak_ref(target) else ostree_content
        result = module.publish(state.server_dir, target)
    print(json.dumps(result, indent=2) if isinstance(result, dict) else result)
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    state = open_state(args)
    if words[:1] == ["publish"]:
        if len(words) != 2:
            raise SystemExit("usage: lab sim publish REF|IMAGE")
        try:
            return sim_publish(state, words[1])
        except FileNotFoundError:
            raise SystemExit(
                f"lab sim publish: the lab has no image server content in {state.server_dir}; run lab up first"
            ) from None
        except (KeyError, ValueError, flatpak_content.FlatpakContentError) as exc:
            raise SystemExit(f"lab sim publish: {exc.args[0] if exc.args else exc}") from None
    if len(words) >= 2 and words[0] in SIM_ACTIONS and words[1] in state.hosts:
        words = [words[1], words[0], *words[2:]]  # accept `sim ACTION HOST …` as well as `sim HOST ACTION …`
    if len(words) < 2 or words[1] not in SIM_ACTIONS:
        raise SystemExit(f"usage: lab sim HOST {{{','.join(SIM_ACTIONS)}}} ARGS… | lab sim publish REF|IMAGE")
    host, action, rest = words[0], words[1], words[2:]
    return run_on_host(state, host, sim.host_command(action, *rest))


# --- argparse ------------------------------------------------------------------------------------------

# A host name prefix: it becomes a directory name, a YAML key, an SSH host alias and part of kernel object names.
PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}\Z")


def host_prefix(value: str) -> str:
    if not PREFIX_RE.match(value) or value.endswith("-"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a host name prefix: lower-case letters, digits and '-', starting with a letter, "
            "at most 30 characters (it becomes a directory and a host name)"
        )
    return value


def host_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of hosts") from None
    if not 1 <= count <= MAX_HOSTS:
        raise argparse.ArgumentTypeError(f"--hosts is between 1 and {MAX_HOSTS}, not {count}")
    return count


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not overwrite `lab --state-dir X sub`.
    parser.add_argument(
        "--state-dir", default=argparse.SUPPRESS, help="lab state directory (default: $IMMUTABLE_HOSTS_LAB_DIR or <repo>/.lab)"
    )


def register(subparsers: Any) -> argparse.ArgumentParser:
    lab = subparsers.add_parser("lab", help="simulated immutable hosts for tests")
    add_state_dir(lab)
    lab.set_defaults(func=lambda _args: (lab.print_help(), 2)[1])
    commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND")

    up = commands.add_parser("up", help="boot hosts (idempotent) and write the inventory")
    up.add_argument("--hosts", type=host_count, default=1, metavar="N", help="number of hosts with this prefix")
    up.add_argument("--profile", choices=PROFILES, default="silverblue")
    up.add_argument("--name", metavar="PREFIX", type=host_prefix, help="host name prefix (default: the profile)")
    add_state_dir(up)
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop every host and remove what the lab set up")
    down.add_argument("--purge", action="store_true", help="also remove the image cache, keys and server content")
    add_state_dir(down)
    down.set_defaults(func=cmd_down)

    status = commands.add_parser("status", help="list hosts and their states")
    status.add_argument("--json", action="store_true")
    add_state_dir(status)
    status.set_defaults(func=cmd_status)

    inv = commands.add_parser("inventory", help="print the inventory path")
    add_state_dir(inv)
    inv.set_defaults(func=cmd_inventory)

    exe = commands.add_parser("exec", help="run a command on a host over SSH")
    exe.add_argument("--user", default="root", choices=("root", "core"))
    add_state_dir(exe)
    exe.add_argument("host")
    exe.add_argument("command", nargs=argparse.REMAINDER)
    exe.set_defaults(func=cmd_exec)

    sim = commands.add_parser(
        "sim",
        help="simulator actions",
        description="lab sim HOST busy SECONDS [TITLE] | lab sim HOST driver NAME | "
        "lab sim HOST lock-finalization | lab sim publish REF|IMAGE",
    )
    add_state_dir(sim)
    sim.add_argument("words", nargs=argparse.REMAINDER)
    sim.set_defaults(func=cmd_sim)
    return lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="immutable-hosts")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
