"""The lab's busybox OCI image: archive structure and digests, image install, host provisioning, and
a real ``podman load`` + ``podman run`` (rootful and rootless) in a trixie rootfs.

The podman test needs root and a Debian trixie rootfs with podman, uidmap and a user ``core``
(uid 1000): ``IMMUTABLE_HOSTS_LAB_ROOTFS=/path/to/rootfs``, or else the lab image built by
``immutable-hosts lab up`` under the lab state dir.  The rootfs is never modified: the test runs on an
overlay of it and binds real directories as podman storage, as the lab hosts do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator

import pytest

from immutable_hosts.lab import oci_content as oci

BUSYBOX = pathlib.Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="apt-get install busybox-static")


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        handle = tar.extractfile(name)
        assert handle is not None, name
        return handle.read()


@pytest.fixture(scope="module")
def archive() -> bytes:
    if not BUSYBOX.is_file():
        pytest.skip("apt-get install busybox-static")
    return oci.archive_bytes(BUSYBOX, "x86_64")


# ----------------------------------------------------------------------------------------------------
# the archive


def test_docker_archive_manifest_and_digests(archive: bytes) -> None:
    manifest = json.loads(read_member(archive, "manifest.json"))
    assert len(manifest) == 1
    entry = manifest[0]
    assert entry["RepoTags"] == ["localhost/lab/busybox:latest"]
    config_raw = read_member(archive, entry["Config"])
    assert entry["Config"] == hashlib.sha256(config_raw).hexdigest() + ".json"
    config = json.loads(config_raw)
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    assert config["rootfs"]["type"] == "layers"
    (layer_name,) = entry["Layers"]
    layer = read_member(archive, layer_name)
    digest = hashlib.sha256(layer).hexdigest()
    assert config["rootfs"]["diff_ids"] == [f"sha256:{digest}"]
    assert layer_name == f"{digest}/layer.tar"
    repositories = json.loads(read_member(archive, "repositories"))
    assert repositories == {"localhost/lab/busybox": {"latest": digest}}


def test_layer_holds_busybox_and_applets(archive: bytes) -> None:
    manifest = json.loads(read_member(archive, "manifest.json"))
    layer = read_member(archive, manifest[0]["Layers"][0])
    entries = members(layer)
    assert read_member(layer, "bin/busybox") == BUSYBOX.read_bytes()
    assert entries["bin/busybox"].mode & 0o111
    applets = oci.applet_paths(BUSYBOX)
    assert len(applets) > 100
    for applet in applets:
        assert entries[applet].issym() and entries[applet].linkname == "/bin/busybox", applet
    assert "bin/sh" in entries and "bin/echo" in entries
    assert read_member(layer, "etc/passwd").startswith(b"root:x:0:0:")
    assert {e.uid for e in entries.values()} == {0}
    assert entries["tmp"].isdir() and entries["tmp"].mode == 0o1777


def test_archive_is_reproducible(archive: bytes, tmp_path: pathlib.Path) -> None:
    dest = tmp_path / "busybox.tar"
    oci.build_archive(dest, BUSYBOX, "x86_64")
    assert dest.read_bytes() == archive
    mtime = dest.stat().st_mtime_ns
    oci.build_archive(dest, BUSYBOX, "x86_64")
    assert dest.stat().st_mtime_ns == mtime, "an unchanged archive was rewritten"


def test_architecture_follows_the_binary_arch(archive: bytes) -> None:
    arm = oci.archive_bytes(BUSYBOX, "aarch64")
    config_name = json.loads(read_member(arm, "manifest.json"))[0]["Config"]
    assert json.loads(read_member(arm, config_name))["architecture"] == "arm64"
    assert arm != archive


# ----------------------------------------------------------------------------------------------------
# image install and host provisioning (no podman needed)


def fake_rootfs(base: pathlib.Path) -> pathlib.Path:
    rootfs = base / "rootfs"
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    shutil.copy2(BUSYBOX, rootfs / "usr/bin/busybox")
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\ncore:x:1000:1000::/home/core:/bin/bash\n")
    return rootfs


@needs_busybox
def test_install_into_rootfs(tmp_path: pathlib.Path) -> None:
    rootfs = fake_rootfs(tmp_path)
    oci.install_into_rootfs(rootfs)
    oci.install_into_rootfs(rootfs)  # idempotent
    archive = (rootfs / "usr/share/immutable-hosts-lab/busybox.tar").read_bytes()
    assert archive == oci.archive_bytes(rootfs / "usr/bin/busybox")
    script = rootfs / "usr/libexec/immutable-hosts-lab/podman-preload"
    assert script.stat().st_mode & 0o111
    subprocess.run(["sh", "-n", str(script)], check=True)
    unit = (rootfs / "usr/lib/systemd/system" / oci.PRELOAD_UNIT).read_text()
    assert "Before=sysinit.target" in unit and "DefaultDependencies=no" in unit
    link = rootfs / "etc/systemd/system/sysinit.target.wants" / oci.PRELOAD_UNIT
    assert os.readlink(link) == f"/usr/lib/systemd/system/{oci.PRELOAD_UNIT}"


@needs_busybox
@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_provision_host_prepares_storage(tmp_path: pathlib.Path) -> None:
    root = fake_rootfs(tmp_path)
    storage = {"root": tmp_path / "storage/root", "core": tmp_path / "storage/core"}
    oci.provision_host(root, storage)
    assert storage["root"].is_dir() and storage["root"].stat().st_uid == 0
    assert (storage["core"].stat().st_uid, storage["core"].stat().st_gid) == (1000, 1000)
    for rel in (".local", ".local/share", ".local/share/containers", ".local/share/containers/storage"):
        assert (root / "home/core" / rel).stat().st_uid == 1000, rel
    assert (root / "var/lib/containers/storage").is_dir()
    assert (root / "usr/share/immutable-hosts-lab/busybox.tar").is_file()


# ----------------------------------------------------------------------------------------------------
# real podman


# Runs as PID 1 of new mount, network and PID namespaces: pivot_root into the overlay (rootless podman
# refuses a chroot), binds the storage like systemd-nspawn --bind does, then execs the command.  When
# it exits the kernel kills everything left in the PID namespace (rootless pause processes included).
ENTER = r"""
set -e
C=$1; RS=$2; CS=$3; shift 3
mount --make-rprivate /
mount -t proc proc "$C/proc"
mount --rbind /sys "$C/sys"; umount "$C/sys/fs/cgroup/unified" 2>/dev/null || true
mount -t tmpfs -o mode=755 tmpfs "$C/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r n ma mi <<<"$d"; mknod -m 666 "$C/dev/$n" c "$ma" "$mi"
done
mkdir -p "$C/dev/net" "$C/dev/pts" "$C/dev/shm"; mknod -m 666 "$C/dev/net/tun" c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$C/dev/pts"; ln -s pts/ptmx "$C/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$C/dev/shm"; ln -s /proc/self/fd "$C/dev/fd"
mount -t tmpfs tmpfs "$C/run"; mount -t tmpfs -o mode=1777 tmpfs "$C/tmp"
mount --bind "$RS" "$C/var/lib/containers/storage"
mount --bind "$CS" "$C/home/core/.local/share/containers/storage"
ip link set lo up
mkdir -p "$C/.oldroot"; cd "$C"
pivot_root . .oldroot
umount -l /.oldroot
mount --make-rshared /
exec "$@"
"""

IN_HOST = r"""
set -e
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
echo "== preload 1"; /usr/libexec/immutable-hosts-lab/podman-preload
echo "== preload 2"; /usr/libexec/immutable-hosts-lab/podman-preload
echo "== root"; podman run --rm --pull=never --network=none localhost/lab/busybox:latest echo ok
install -d -m 0700 -o core -g core /run/user/1000
echo "== core"
setpriv --reuid=1000 --regid=1000 --init-groups env HOME=/home/core XDG_RUNTIME_DIR=/run/user/1000 \
  PODMAN_IGNORE_CGROUPSV1_WARNING=1 \
  podman run --rm --pull=never --network=none localhost/lab/busybox:latest sh -c 'echo ok; cat /proc/self/uid_map'
echo "== end"
"""


@contextlib.contextmanager
def overlay(lower: pathlib.Path, base: pathlib.Path) -> Iterator[pathlib.Path]:
    dirs = {name: base / name for name in ("upper", "work", "merged")}
    for path in dirs.values():
        path.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={dirs['upper']},workdir={dirs['work']}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])], check=True)
    try:
        yield dirs["merged"]
    finally:
        subprocess.run(["umount", str(dirs["merged"])], check=True)


def libpod_cgroups() -> set[pathlib.Path]:
    return set(pathlib.Path("/sys/fs/cgroup").glob("*/libpod_parent"))


@contextlib.contextmanager
def no_new_libpod_cgroups() -> Iterator[None]:
    """Rootful podman on cgroup v1 leaves empty libpod_parent cgroups; remove the ones this test made."""
    before = libpod_cgroups()
    try:
        yield
    finally:
        for path in sorted(libpod_cgroups() - before, reverse=True):
            for sub in sorted(path.glob("*/"), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                path.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, namespaces)")
def test_podman_loads_and_runs_preloaded_image(tmp_path: pathlib.Path, lab_image_rootfs: pathlib.Path) -> None:
    lower = lab_image_rootfs
    assert (lower / "usr/bin/podman").exists() and b"\ncore:" in b"\n" + (lower / "etc/passwd").read_bytes()
    storage = {"root": tmp_path / "storage/root", "core": tmp_path / "storage/core"}
    with overlay(lower, tmp_path / "ovl") as merged, no_new_libpod_cgroups():
        oci.install_into_rootfs(merged)
        oci.provision_host(merged, storage)
        proc = subprocess.run(
            [
                "unshare",
                "-m",
                "-n",
                "-p",
                "-f",
                "--propagation",
                "private",
                "bash",
                "-c",
                ENTER,
                "enter",
                str(merged),
                str(storage["root"]),
                str(storage["core"]),
                "sh",
                "-c",
                IN_HOST,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    sections = dict(part.split("\n", 1) for part in out.split("== ")[1:])
    assert sections["preload 1"].count("Loaded image: localhost/lab/busybox:latest") == 2  # root + core
    assert "Loaded image" not in sections["preload 2"]  # both already present
    assert sections["root"].strip() == "ok"
    core = sections["core"].split()
    assert core[0] == "ok" and core[1:4] == ["0", "1000", "1"], "not a rootless user namespace of core"
    assert any(storage["root"].glob("overlay-images/*/manifest"))
    assert (storage["core"] / "overlay-images").stat().st_uid == 1000


# ----------------------------------------------------------------------------------------------------
# a booted host: the preload unit runs before Quadlet units with Pull=never, rootful and rootless

ROOTFUL_UNIT = """[Container]
Image=localhost/lab/busybox:latest
Exec=/bin/sleep 1000
Network=none
Pull=never
PodmanArgs=--stop-timeout=1
[Install]
WantedBy=multi-user.target
"""
ROOTLESS_UNIT = ROOTFUL_UNIT.replace("multi-user.target", "default.target")
CONTAINERS_CONF = "[containers]\npids_limit = 0\ndefault_sysctls = []\n"


def prepare_booted_host(merged: pathlib.Path, storage: dict[str, pathlib.Path]) -> None:
    oci.install_into_rootfs(merged)
    oci.provision_host(merged, storage)
    (merged / "etc/containers/systemd").mkdir(parents=True, exist_ok=True)
    (merged / "etc/containers/containers.conf").write_text(CONTAINERS_CONF)
    (merged / "etc/containers/systemd/bb.container").write_text(ROOTFUL_UNIT)
    user_units = merged / "home/core/.config/containers/systemd"
    user_units.mkdir(parents=True)
    (user_units / "bbu.container").write_text(ROOTLESS_UNIT)
    for path in (merged / "home/core/.config", merged / "home/core/.config/containers", user_units, user_units / "bbu.container"):
        os.chown(path, 1000, 1000)
    (merged / "var/lib/systemd/linger").mkdir(parents=True, exist_ok=True)
    (merged / "var/lib/systemd/linger/core").touch()


def remove_cgroup_tree(path: pathlib.Path) -> None:
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def container_init(nspawn_pid: int) -> str:
    """PID of the container's systemd (nspawn's child whose comm is ``systemd``), or ""."""
    with contextlib.suppress(OSError):
        for child in pathlib.Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split():
            if pathlib.Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                return child
    return ""


@contextlib.contextmanager
def booted(merged: pathlib.Path, storage: dict[str, pathlib.Path], name: str, log: pathlib.Path) -> Iterator[list[str]]:
    """Boot ``merged`` with systemd-nspawn (flags of lab-feasibility §4) in a cgroup of its own;
    yields the nsenter argv prefix; stops it by PID (SIGTERM twice, then SIGKILL) and cleans up."""
    cgroup = pathlib.Path("/sys/fs/cgroup/unified") / name
    cgroup.mkdir()
    argv = [
        "systemd-nspawn",
        "-D",
        str(merged),
        f"--machine={name}",
        "--register=no",
        "--keep-unit",
        "--private-network",
        "--system-call-filter=@keyring bpf",
        "--capability=CAP_NET_ADMIN",
        f"--bind={storage['root']}:/var/lib/containers/storage",
        f"--bind={storage['core']}:/home/core/.local/share/containers/storage",
        "--console=read-only",
        "-b",
    ]
    env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
    log_file = log.open("wb")
    proc = subprocess.Popen(
        ["sh", "-c", 'echo $$ > "$1" && shift && exec "$@"', "sh", str(cgroup / "cgroup.procs"), *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        leader = ""
        while not leader and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            leader = container_init(proc.pid)
        assert leader, f"systemd-nspawn did not start systemd: {log.read_text(errors='replace')[-2000:]}"
        enter = ["nsenter", "-t", leader, "-a"]
        state = ""
        while state not in ("running", "degraded") and time.monotonic() < deadline + 60:
            time.sleep(0.2)
            state = in_host(enter, "systemctl", "is-system-running", "--wait")
        assert state in ("running", "degraded"), f"host did not boot ({state!r}): {log.read_text(errors='replace')[-2000:]}"
        yield enter
    finally:
        for sig in (signal.SIGTERM, signal.SIGTERM):
            if proc.poll() is None:
                proc.send_signal(sig)
                time.sleep(1)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for base in ("/run/systemd/nspawn/propagate", "/run/systemd/nspawn/unix-export"):
            shutil.rmtree(pathlib.Path(base) / name, ignore_errors=True)
        remove_cgroup_tree(cgroup)
        remove_cgroup_tree(pathlib.Path("/sys/fs/cgroup/systemd") / name)  # nspawn's name=systemd v1 group
        log_file.close()


def in_host(enter: list[str], *argv: str) -> str:
    return subprocess.run([*enter, *argv], capture_output=True, text=True, timeout=60, check=False).stdout.strip()


def settled(enter: list[str], *argv: str) -> str:
    """A unit state once it is no longer activating (the user manager starts after the system boot)."""
    deadline = time.monotonic() + 60
    state = in_host(enter, *argv)
    while state in ("activating", "") and time.monotonic() < deadline:
        time.sleep(0.2)
        state = in_host(enter, *argv)
    return state


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("systemd-nspawn"), reason="needs root and systemd-nspawn")
@pytest.mark.skipif(not pathlib.Path("/sys/fs/cgroup/unified/cgroup.procs").exists(), reason="needs cgroup2 at unified")
def test_booted_host_preloads_before_quadlet_units(tmp_path: pathlib.Path, lab_image_rootfs: pathlib.Path) -> None:
    lower = lab_image_rootfs
    assert (lower / "usr/lib/systemd/systemd").exists() and (lower / "usr/bin/podman").exists()
    storage = {"root": tmp_path / "storage/root", "core": tmp_path / "storage/core"}
    with overlay(lower, tmp_path / "ovl") as merged:
        prepare_booted_host(merged, storage)
        for boot in (1, 2):  # the second boot finds both images present and loads nothing
            with booted(merged, storage, f"h3-oci-{os.getpid()}-{boot}", tmp_path / f"boot{boot}.log") as enter:
                preload = in_host(enter, "systemctl", "show", "-p", "Result", "-p", "ExecMainStatus", oci.PRELOAD_UNIT)
                journal = in_host(enter, "journalctl", "-b", "-o", "cat", "-u", oci.PRELOAD_UNIT)
                rootful = in_host(enter, "systemctl", "is-active", "bb.service")
                rootless = settled(enter, "systemctl", "--user", "-M", "core@", "is-active", "bbu.service")
            assert preload.split() == ["Result=success", "ExecMainStatus=0"]
            assert journal.count("Loaded image: localhost/lab/busybox:latest") == (2 if boot == 1 else 0)
            assert (rootful, rootless) == ("active", "active")
