"""The lab image: Debian trixie built with debootstrap, configured as a booted systemd host, cached as a tarball.

The cache key covers the package list and every file that goes into the image (this module, the simulators in
``sim/`` and ``oci_content.py``), so changing any of them rebuilds; otherwise the unpacked image is reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from immutable_hosts.lab import flatpak_content, oci_content, pull_content, registry, sim

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
CORE_UID = 1000
COMPLETE_STAMP = ".lab-image-complete"
DEBOOTSTRAP_ATTEMPTS = 3

BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "dbus-user-session",
    "libpam-systemd",
    "openssh-server",
    "python3",
    "sudo",
    "podman",
    "uidmap",
    "passt",
    "catatonit",
    "flatpak",
    "ostree",
    "gnupg",
    "iproute2",
    "procps",
]

# Units that only cost boot time and memory in a lab host.
MASKED_UNITS = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "console-getty.service",
    # The registry's tools are in the image for the machine (registry.py runs them from the image's tree); hosts
    # never serve a registry.
    "docker-registry.service",
]

CONTAINERS_CONF = """\
# Lab host: nspawn has no pids controller and a read-only /proc/sys (lab-feasibility section 4).
# keyring = false: every lab host shares one kernel, and uid 1000 is the same kernel user on all of them, so the
# per-user key quota (kernel.keys.maxkeys/maxbytes) that crun's per-container session keyrings draw on is shared by
# the whole fleet; with 100 hosts it runs out ("create keyring: Disk quota exceeded"). A real host has a kernel of
# its own.
# netns = "host": a bridge network (netavark) writes /proc/sys, which nspawn keeps read-only; builds and containers
# without a Network= of their own share the host's namespace, which is the lab host's own.
# A host's build limits are the machine's, written when the host is provisioned (oci_content.BUILD_LIMITS).
[containers]
pids_limit = 0
default_sysctls = []
keyring = false
netns = "host"
"""

SSHD_CONF = """\
# immutable-hosts lab
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 100:30:200
"""

TMPFILES_CONF = """\
# immutable-hosts lab: rootless pasta needs a usable tun device. (/run/ostree-booted is written at boot by the
# simulator's boot unit, with the booted deployment's device/inode as libostree expects.)
z /dev/net/tun 0666 root root -
"""

JOURNALD_CONF = """\
[Journal]
Storage=volatile
RuntimeMaxUse=8M
"""

SUDOERS = "core ALL=(ALL) NOPASSWD: ALL\n"

# Modules of the other lab parts; each may add packages and image-time installation steps.
# The lab parts that bring packages and files into the image.
LOCK_NAME = "image.lock"
CONTENT_MODULES = (sim, flatpak_content, oci_content, registry, pull_content)


def package_list() -> list[str]:
    packages = set(BASE_PACKAGES)
    for module in CONTENT_MODULES:
        packages.update(module.IMAGE_PACKAGES)
    return sorted(packages)


def image_input_files() -> list[Path]:
    """Files whose content ends up in the image."""
    lab = Path(__file__).resolve().parent
    files = [lab / "image.py", lab / "oci_content.py", lab / "ostree_content.py"]  # its package catalogue is in the image
    sim = lab / "sim"
    if sim.is_dir():
        files += [p for p in sim.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(p for p in files if p.exists())


def image_key(packages: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"suite": SUITE, "mirror": MIRROR, "packages": packages}).encode())
    lab = Path(__file__).resolve().parent
    for path in image_input_files():
        digest.update(str(path.relative_to(lab)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class Image:
    """One cached image under ``<state>/image``: ``<key>.tar.zst`` plus the unpacked ``<key>/rootfs``."""

    def __init__(self, image_dir: Path, key: str, packages: list[str]) -> None:
        self.image_dir = image_dir
        self.key = key
        self.packages = packages

    @classmethod
    def current(cls, image_dir: Path) -> Image:
        packages = package_list()
        return cls(image_dir, image_key(packages), packages)

    @property
    def tarball(self) -> Path:
        return self.image_dir / f"trixie-{self.key}.tar.zst"

    @property
    def rootfs(self) -> Path:
        return self.image_dir / self.key / "rootfs"

    def ready(self) -> bool:
        return (self.rootfs / COMPLETE_STAMP).exists()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The image dir may be shared by labs that come up at the same time: one builds, the others wait."""
        self.image_dir.mkdir(parents=True, exist_ok=True)
        with open(self.image_dir / LOCK_NAME, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure(self, report: Callable[[str], None] = lambda _msg: None) -> float:
        """Make the unpacked rootfs available; returns seconds spent."""
        start = time.monotonic()
        if self.ready():
            return 0.0
        with self._locked():
            if not self.ready():
                if self.tarball.exists():
                    report("unpacking cached image")
                    self._unpack()
                else:
                    report("building image with debootstrap")
                    self._build(report)
        return time.monotonic() - start

    # --- build ---------------------------------------------------------------------------------------
    def _build(self, report: Callable[[str], None]) -> None:
        build = self.image_dir / f"build-{self.key}"
        remove_tree(build)
        rootfs = build / "rootfs"
        rootfs.mkdir(parents=True)
        debs = self.image_dir / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        self._debootstrap(rootfs, debs, build / "debootstrap.log", report)
        report("configuring image")
        configure_rootfs(rootfs)
        for module in (sim, oci_content):
            report(f"{module.__name__.rsplit('.', 1)[-1]}: files into the image")
            module.install_into_rootfs(rootfs)
        (rootfs / COMPLETE_STAMP).write_text(json.dumps({"key": self.key, "packages": self.packages}) + "\n")
        report("writing image tarball")
        self._pack(rootfs)
        self.rootfs.parent.mkdir(parents=True, exist_ok=True)
        remove_tree(self.rootfs)
        rootfs.rename(self.rootfs)
        remove_tree(build)

    def _debootstrap(self, rootfs: Path, debs: Path, log: Path, report: Callable[[str], None]) -> None:
        """debootstrap from the mirror; a failed download (seen here as a stalled InRelease) is tried again, with the
        packages already fetched kept in the cache."""
        argv = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}", f"--include={','.join(self.packages)}"]
        for attempt in range(1, DEBOOTSTRAP_ATTEMPTS + 1):
            with log.open("w") as out:
                done = subprocess.run([*argv, SUITE, str(rootfs), MIRROR], stdout=out, stderr=subprocess.STDOUT, check=False)
            if done.returncode == 0:
                return
            if attempt < DEBOOTSTRAP_ATTEMPTS:
                report(f"debootstrap failed (attempt {attempt}); trying again")
                remove_tree(rootfs)
                rootfs.mkdir(parents=True)
                time.sleep(5 * attempt)
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"debootstrap failed {DEBOOTSTRAP_ATTEMPTS} times; the end of {log}:\n{tail}")

    def _pack(self, rootfs: Path) -> None:
        partial = self.tarball.with_suffix(".partial")
        subprocess.run(
            [
                "tar", "-C", str(rootfs), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                "--acls", "-I", "zstd -T0 -3", "-cf", str(partial), ".",
            ],
            check=True,
        )  # fmt: skip
        partial.rename(self.tarball)

    def _unpack(self) -> None:
        target = self.rootfs.parent / "rootfs.partial"
        remove_tree(target)
        target.mkdir(parents=True)
        subprocess.run(
            [
                "tar", "-C", str(target), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                "--acls", "-I", "zstd -T0", "-xpf", str(self.tarball),
            ],
            check=True,
        )  # fmt: skip
        remove_tree(self.rootfs)
        target.rename(self.rootfs)

    def prune_others(self, keep: set[str]) -> None:
        """Remove images of other keys unless listed in ``keep`` or used as an overlay lower dir by any mount.

        The image dir may be shared by several labs (the test suite links it), so "no hosts in this lab" is not
        enough: a mounted lower dir belongs to a running host somewhere.
        """
        if not self.image_dir.exists():
            return
        with self._locked():
            in_use = lower_dirs_in_use()
            keep = keep | {self.key} | {e.name for e in self.image_dir.iterdir() if (e / "rootfs").resolve() in in_use}
            for entry in self.image_dir.iterdir():
                key = entry.name.removeprefix("trixie-").removesuffix(".tar.zst").removeprefix("build-")
                if entry.name in ("debs", LOCK_NAME, "pull-wheels") or key in keep:  # pull-wheels: pull_content's cache
                    continue
                remove_tree(entry)


def chroot(rootfs: Path, *argv: str) -> None:
    subprocess.run(["chroot", str(rootfs), *argv], check=True, capture_output=True)


def write(rootfs: Path, relative: str, text: str, mode: int = 0o644) -> None:
    path = rootfs / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def lower_dirs_in_use() -> set[Path]:
    """Every overlay lower dir mounted on the machine, resolved: labs may name the same image through a symlink."""
    found = set()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "overlay":
            continue
        for option in fields[3].split(","):
            if option.startswith("lowerdir="):
                found.update(Path(d).resolve() for d in option.removeprefix("lowerdir=").split(":"))
    return found


def configure_rootfs(rootfs: Path) -> None:
    """Turn the debootstrapped tree into a lab host image (per-host identity is added later by hosts.py)."""
    chroot(rootfs, "useradd", "--create-home", "--uid", str(CORE_UID), "--user-group", "--shell", "/bin/bash", "core")
    write(rootfs, "etc/sudoers.d/core", SUDOERS, 0o440)
    write(rootfs, "etc/containers/containers.conf", CONTAINERS_CONF)
    write(rootfs, "etc/ssh/sshd_config.d/lab.conf", SSHD_CONF)
    write(rootfs, "etc/tmpfiles.d/immutable-hosts-lab.conf", TMPFILES_CONF)
    write(rootfs, "etc/systemd/journald.conf.d/lab.conf", JOURNALD_CONF)
    write(rootfs, "etc/resolv.conf", "# immutable-hosts lab: hosts have no DNS; see /etc/hosts\n")
    write(rootfs, "etc/machine-id", "")
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for unit in MASKED_UNITS:
        link = rootfs / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    chroot(rootfs, "systemctl", "set-default", "multi-user.target")
    # A Fedora host reaches network-online.target at boot (NetworkManager-wait-online); Podman's user Quadlet
    # services wait for it, so the lab host reaches it too (its veth is configured before multi-user.target).
    chroot(rootfs, "systemctl", "add-wants", "multi-user.target", "network-online.target")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file():
                entry.unlink()


def remove_tree(path: Path) -> None:
    """rm -rf that also copes with OSTree's immutable deployment directories."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
        shutil.rmtree(path)
    else:
        path.unlink()
