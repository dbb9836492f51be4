"""Lab hosts: an overlayfs root on the shared image, its own netns, booted by ``systemd-nspawn -b`` under a supervisor.

The supervisor (``python -m immutable_hosts.lab.hosts supervise HOSTDIR``) restarts nspawn when it exits with 133,
which is what nspawn returns when the host runs ``systemctl reboot``; any other exit ends the supervisor. nspawn
binds a freshly generated ``/proc/sys/kernel/random/boot_id`` for every boot, so each restart is a new boot.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from immutable_hosts.lab import flatpak_content, oci_content, ostree_content, registry, sim, ssh
from immutable_hosts.lab.image import CORE_UID, remove_tree
from immutable_hosts.lab.network import HostNetwork
from immutable_hosts.lab.state import SERVER_NAME, SERVER_URL, HostRecord, LabState, ProcessRef, write_whole

REBOOT_EXIT = 133
ROOT_STORAGE = "var/lib/containers/storage"
CORE_STORAGE = "home/core/.local/share/containers/storage"
NSPAWN_ENV = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
STOP_GRACE = 5.0  # seconds before the second SIGTERM (a hung user@.service otherwise holds the halt for 90 s)
STOP_KILL = 20.0  # seconds before SIGKILL
# nspawn without a host systemd (--keep-unit) puts the container in "<own cgroup>/payload". Started from the same
# cgroup, all hosts would share one tree and their systemds would see (and kill) each other's processes, so
# every host's supervisor first joins a cgroup of its own in the hierarchies nspawn uses.
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))


class Host:
    def __init__(self, state: LabState, record: HostRecord) -> None:
        self.state = state
        self.record = record
        self.net = HostNetwork.for_index(state.lab_id, record.index)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def dir(self) -> Path:
        return self.state.host_dir(self.name)

    @property
    def merged(self) -> Path:
        return self.dir / "root"

    @property
    def machine(self) -> str:
        return f"ihl{self.state.lab_id}-{self.name}"

    @property
    def lower(self) -> Path:
        return self.state.image_dir / self.record.image / "rootfs"

    @property
    def storage(self) -> dict[str, Path]:
        return {"root": self.dir / "storage" / "root", "core": self.dir / "storage" / "core"}

    # --- filesystem ----------------------------------------------------------------------------------
    def mounted(self) -> bool:
        return subprocess.run(["mountpoint", "-q", str(self.merged)]).returncode == 0

    def mount(self) -> None:
        if self.mounted():
            return
        for sub in ("upper", "work", "root"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={self.lower},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.merged)], check=True)

    def unmount(self) -> None:
        if self.mounted():
            done = subprocess.run(["umount", str(self.merged)], capture_output=True)
            if done.returncode != 0:
                subprocess.run(["umount", "--lazy", str(self.merged)], check=True)

    def discard_root(self) -> None:
        """Forget the host's own layer and storage (the next mount starts from the image again)."""
        self.unmount()
        for sub in ("upper", "work", "storage"):
            remove_tree(self.dir / sub)

    def remove_files(self) -> None:
        """Remove the host's directory; OSTree's immutable deployment dirs are released first."""
        if (self.dir / "upper").is_dir():
            ostree_content.cleanup_host(self.dir / "upper")
        remove_tree(self.dir)

    @property
    def provisioned_stamp(self) -> Path:
        return self.dir / "provisioned"

    def provision(self, client_public_key: str) -> None:
        """First-boot identity and content; runs once per host, on the merged root, before the first boot."""
        root = self.merged
        (root / "etc/hostname").write_text(f"{self.name}\n")
        (root / "etc/hosts").write_text(hosts_file(self.name, str(self.net.machine_address)))
        (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        ssh.make_host_key(root)
        ssh.install_authorized_key(root / "root", client_public_key, 0, 0)
        ssh.install_authorized_key(root / "home/core", client_public_key, CORE_UID, CORE_UID)
        self._prepare_storage()
        install_registry_trust(root, self.state)
        provision_content(self)
        self.provisioned_stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))

    def _prepare_storage(self) -> None:
        storage = self.storage
        storage["root"].mkdir(parents=True, exist_ok=True)
        storage["core"].mkdir(parents=True, exist_ok=True)
        os.chown(storage["core"], CORE_UID, CORE_UID)
        (self.merged / ROOT_STORAGE).mkdir(parents=True, exist_ok=True)
        # Mount points under core's home must belong to core, or rootless podman cannot create its dirs.
        path = self.merged / "home/core"
        for part in Path(CORE_STORAGE).relative_to("home/core").parts:
            path = path / part
            path.mkdir(exist_ok=True)
            os.chown(path, CORE_UID, CORE_UID)

    # --- processes -----------------------------------------------------------------------------------
    def nspawn_argv(self) -> list[str]:
        storage = self.storage
        return [
            "systemd-nspawn",
            f"--directory={self.merged}",
            f"--machine={self.machine}",
            "--register=no",
            "--keep-unit",
            f"--network-namespace-path={self.net.netns_path}",
            "--system-call-filter=@keyring bpf",
            "--capability=CAP_NET_ADMIN",
            "--resolv-conf=off",
            "--link-journal=no",
            f"--bind={storage['root']}:/{ROOT_STORAGE}",
            f"--bind={storage['core']}:/{CORE_STORAGE}",
            *self.firmware_binds(),
            "--console=read-only",
            "--boot",
        ]

    def firmware_binds(self) -> list[str]:
        """Apple-silicon hosts get an Apple device tree where Linux exposes it (the hardware cannot be had).

        sysfs has no ``devicetree`` directory on the machine, so the whole ``/sys/firmware`` is replaced: like a real
        Apple machine, the host then sees a device tree and no ACPI or DMI tables.
        """
        if self.record.profile != "apple-silicon":
            return []
        firmware = self.dir / "firmware"
        tree = firmware / "devicetree" / "base"
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "compatible").write_bytes(APPLE_COMPATIBLE)
        (tree / "model").write_bytes(APPLE_MODEL)
        return [f"--bind-ro={firmware}:/sys/firmware"]

    def supervisor_running(self) -> bool:
        return self.record.supervisor is not None and self.record.supervisor.alive()

    def start(self, python: str, env: dict[str, str]) -> None:
        """Start the supervisor (which boots the host); returns without waiting for the boot."""
        spec = {"argv": self.nspawn_argv(), "env": NSPAWN_ENV, "cgroups": [str(c) for c in self.cgroups()]}
        (self.dir / "nspawn.json").write_text(json.dumps(spec, indent=2) + "\n")
        pid_file = self.dir / "supervisor.pid"
        pid_file.unlink(missing_ok=True)
        log = (self.dir / "supervisor.log").open("a")
        subprocess.run(
            ["setsid", "--fork", python, "-m", "immutable_hosts.lab.hosts", "supervise", str(self.dir)],
            check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: supervisor did not start; see {self.dir / 'supervisor.log'}")
            time.sleep(0.02)
        self.record.supervisor = ProcessRef.of(int(pid_file.read_text()))

    def nspawn_process(self) -> ProcessRef | None:
        path = self.dir / "nspawn.pid"
        if not path.exists():
            return None
        ref = ProcessRef.from_json(json.loads(path.read_text()))
        return ref if ref and ref.alive() else None

    def boots(self) -> int:
        path = self.dir / "boots"
        return int(path.read_text()) if path.exists() else 0

    def request_stop(self) -> None:
        """Ask the supervisor to halt the host; without a supervisor, ask nspawn directly."""
        if self.supervisor_running():
            assert self.record.supervisor is not None
            os.kill(self.record.supervisor.pid, signal.SIGTERM)
        elif (nspawn := self.nspawn_process()) is not None:
            os.kill(nspawn.pid, signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.supervisor_running() or self.nspawn_process()):
            time.sleep(0.05)
        for ref in (self.nspawn_process(), self.record.supervisor):
            if ref is not None and ref.alive():
                os.kill(ref.pid, signal.SIGKILL)
        self.kill_cgroups()
        self.record.supervisor = None
        (self.dir / "nspawn.pid").unlink(missing_ok=True)

    def kill_cgroups(self) -> None:
        """Kill whatever is left in the host's own cgroups (cgroup v2 ``cgroup.kill``: exactly this host's processes)."""
        for cgroup in self.cgroups():
            kill = cgroup / "cgroup.kill"
            if kill.exists() and (cgroup / "cgroup.events").read_text().find("populated 1") >= 0:
                kill.write_text("1\n")
                deadline = time.monotonic() + 5
                while "populated 1" in (cgroup / "cgroup.events").read_text() and time.monotonic() < deadline:
                    time.sleep(0.05)

    def cgroups(self) -> list[Path]:
        return [h / f"immutable-hosts-lab-{self.state.lab_id}" / self.name for h in CGROUP_HIERARCHIES if h.is_dir()]

    def remove_runtime_leftovers(self) -> None:
        """nspawn cannot remove its propagation dir when /run is on disk; remove ours by machine name."""
        for base in ("/run/systemd/nspawn/propagate", "/run/systemd/nspawn/unix-export"):
            remove_tree(Path(base) / self.machine)
        for cgroup in self.cgroups():
            remove_cgroup(cgroup)

    def state_name(self) -> str:
        if not self.supervisor_running():
            return "stopped"
        if self.nspawn_process() is None:
            return "starting"
        return "running" if ssh.port_open(str(self.net.host_address)) else "booting"


def hosts_file(name: str, server_address: str) -> str:
    """The image server and the registry (``registry.lab``, and ``quay.io`` for the lab's Fedora images) are this
    host's machine-side veth address, where the lab's server process listens."""
    names = " ".join((SERVER_NAME, *registry.HOST_NAMES))
    return f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n{server_address}\t{names}\n"


def install_registry_trust(root: Path, state: LabState) -> None:
    """The lab registry's CA: in ``certs.d`` for each registry name (what containers/image reads) and in the system
    store, as ``update-ca-certificates`` would leave it (the file under /usr/local/share and the bundle)."""
    files = registry.host_files(state)
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    ca = registry.host_ca(state)
    if bundle.exists() and ca not in bundle.read_bytes():
        with bundle.open("ab") as handle:
            handle.write(ca)


# --- machine limits ------------------------------------------------------------------------------------

INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_HOST = 16  # an idle host holds 6 (systemd, journald, logind, dbus); user managers and sessions add more
INOTIFY_BASELINE = 128  # the kernel default, left for everything else root runs on the machine


def inotify_record(state: LabState) -> Path:
    return state.root / "sysctl-inotify.json"


def ensure_inotify_instances(state: LabState, host_count: int) -> None:
    """All hosts' root processes share root's inotify instance limit (no user namespaces). The kernel default
    (128) stops the ~32nd host with "Failed to allocate manager object: Too many open files", so raise it and
    record the original value; ``restore_inotify_instances`` puts it back at ``lab down``."""
    current = int(INOTIFY_INSTANCES.read_text())
    needed = INOTIFY_BASELINE + INOTIFY_PER_HOST * host_count
    if current >= needed:
        return
    record = inotify_record(state)
    if not record.exists():
        record.write_text(json.dumps({"original": current}) + "\n")
    original = json.loads(record.read_text())["original"]
    INOTIFY_INSTANCES.write_text(f"{needed}\n")
    record.write_text(json.dumps({"original": original, "set": needed}) + "\n")


def restore_inotify_instances(state: LabState) -> None:
    record = inotify_record(state)
    if not record.exists():
        return
    data = json.loads(record.read_text())
    if int(INOTIFY_INSTANCES.read_text()) == data.get("set"):  # leave it alone if someone else changed it since
        INOTIFY_INSTANCES.write_text(f"{data['original']}\n")
    record.unlink()


def remove_cgroup(path: Path) -> None:
    """rmdir a cgroup subtree bottom-up (cgroup dirs are removed with rmdir, never unlink); the parent too if empty."""
    if not path.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def join_cgroup(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.procs").write_text(f"{os.getpid()}\n")


def provision_content(host: Host) -> None:
    """Hand the host's root to the other lab parts (OSTree sysroot, Flatpak, Podman storage)."""
    # server_dir: the helpers copy content from the server's directory on the machine (the hosts' own view of the
    # server, http://images.lab:8088, is not reachable from the machine by that name).
    server_dir = host.state.server_dir
    ostree_content.provision_host(host.merged, host.record.profile, SERVER_URL, server_dir=server_dir)
    flatpak_content.provision_host(host.merged, host.record.profile, SERVER_URL, server_dir=server_dir)
    oci_content.provision_host(host.merged, host.storage)
    if host.record.profile == "bootc-only":
        sim.strip_rpm_ostree(host.merged)


# What an M1 Pro MacBook Pro's device tree says of itself (NUL-separated strings, as the kernel exposes them).
APPLE_COMPATIBLE = b"apple,j314s\0apple,t6000\0apple,arm-platform\0"
APPLE_MODEL = b"Apple MacBook Pro (14-inch, M1 Pro, 2021)\0"


# --- supervisor (runs as its own process) --------------------------------------------------------------


class Supervisor:
    def __init__(self, host_dir: Path) -> None:
        self.host_dir = host_dir
        spec = json.loads((host_dir / "nspawn.json").read_text())
        self.argv: list[str] = spec["argv"]
        self.env = {**os.environ, **spec["env"]}
        self.cgroups = [Path(c) for c in spec.get("cgroups", [])]
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def on_term(self, *_: object) -> None:
        with self.lock:
            self.stopping = True
            child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        # A second SIGTERM makes nspawn terminate at once; a stuck child gets SIGKILL.
        for delay, sig in ((STOP_GRACE, signal.SIGTERM), (STOP_KILL, signal.SIGKILL)):
            timer = threading.Timer(delay, self._signal_child, (child, sig))
            timer.daemon = True  # must not keep the supervisor alive once nspawn is gone
            timer.start()

    @staticmethod
    def _signal_child(child: subprocess.Popen[bytes], sig: int) -> None:
        if child.poll() is None:
            child.send_signal(sig)

    def kill_leftovers(self) -> None:
        """If nspawn died abnormally (e.g. SIGKILL) the host's init can outlive it; never boot on top of it."""
        for cgroup in self.cgroups:
            payload = cgroup / "payload"
            if (payload / "cgroup.kill").exists() and "populated 1" in (payload / "cgroup.events").read_text():
                (payload / "cgroup.kill").write_text("1\n")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        for cgroup in self.cgroups:
            join_cgroup(cgroup)
        # The parent polls for this file and must never read it half written.
        write_whole(self.host_dir / "supervisor.pid", f"{os.getpid()}\n")
        rc = 0
        while True:
            boots_file = self.host_dir / "boots"
            boots = int(boots_file.read_text()) + 1 if boots_file.exists() else 1
            log = (self.host_dir / "console.log").open("ab")
            with self.lock:
                if self.stopping:
                    break
                self.child = subprocess.Popen(
                    self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                ref = ProcessRef.of(self.child.pid)
                write_whole(self.host_dir / "nspawn.pid", json.dumps(ref.to_json()) + "\n")
            except ProcessLookupError:
                pass  # exited already; wait() below collects its status
            write_whole(boots_file, f"{boots}\n")
            rc = self.child.wait()
            log.close()
            self.kill_leftovers()
            print(f"{time.strftime('%H:%M:%S')} boot {boots}: nspawn exited {rc}", flush=True)
            if self.stopping or rc != REBOOT_EXIT:
                break
        (self.host_dir / "nspawn.pid").unlink(missing_ok=True)
        return rc


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "supervise":
        return Supervisor(Path(argv[1])).run()
    print("usage: python -m immutable_hosts.lab.hosts supervise HOSTDIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
