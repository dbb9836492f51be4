"""A small local OCI image for the lab, built from busybox-static with no registry.

The image ``localhost/lab/busybox:latest`` is written by hand, with the standard library only, as a
docker-archive tarball (the format of ``docker save``): ``manifest.json`` + an image config blob + one
layer tar that holds ``/bin/busybox`` and a symlink per applet.  ``podman load -i`` imports it without
any registry, so Quadlet containers with ``Pull=never`` start without network.

Build time (``install_into_rootfs``): the archive, a preload script and a systemd unit go into the image.
Boot time (inside every host): ``immutable-hosts-lab-podman-preload.service`` runs in early boot
(``Before=sysinit.target``, so it is ordered before every normal service, rootful Quadlet units and
``user@.service`` included) and loads the archive into root's storage and, as user ``core``, into core's
rootless storage, each only if the image is not there yet.  Before first boot (``provision_host``): the
machine-side storage directories that H1 bind-mounts get the right owners and modes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import resource
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable

IMAGE_PACKAGES: list[str] = ["podman", "uidmap", "passt", "busybox-static", "catatonit"]

IMAGE_NAME = "localhost/lab/busybox:latest"
CORE_USER = "core"
ARCHIVE_IN_IMAGE = pathlib.PurePosixPath("/usr/share/immutable-hosts-lab/busybox.tar")
PRELOAD_SCRIPT = pathlib.PurePosixPath("/usr/libexec/immutable-hosts-lab/podman-preload")
PRELOAD_UNIT = "immutable-hosts-lab-podman-preload.service"
ROOT_STORAGE = pathlib.PurePosixPath("/var/lib/containers/storage")
CORE_STORAGE = pathlib.PurePosixPath("/home/core/.local/share/containers/storage")

# A fixed timestamp keeps the archive byte-for-byte reproducible, so digests are stable across builds.
EPOCH = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"
GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
SKELETON_DIRS = (
    "bin",
    "sbin",
    "usr",
    "usr/bin",
    "usr/sbin",
    "etc",
    "dev",
    "proc",
    "sys",
    "root",
    "var",
    "var/tmp",
    "tmp",
    "run",
    "home",
)
ETC_USERS = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
ETC_GROUPS = "root:x:0:\nnogroup:x:65534:\n"

PRELOAD_SH = f"""#!/bin/sh
# Preload {IMAGE_NAME} into root's and {CORE_USER}'s podman storage (immutable-hosts lab).
# Runs in early boot; each load only happens when the image is missing.
set -eu
ARCHIVE={ARCHIVE_IN_IMAGE}
IMAGE={IMAGE_NAME}
export PODMAN_IGNORE_CGROUPSV1_WARNING=1

podman --log-level=error image exists "$IMAGE" || podman --log-level=error load -q -i "$ARCHIVE"

id -u {CORE_USER} >/dev/null 2>&1 || exit 0
uid=$(id -u {CORE_USER}); gid=$(id -g {CORE_USER}); home=$(getent passwd {CORE_USER} | cut -d: -f6)
rt=/run/user/$uid
made_rt=
if [ ! -d "$rt" ]; then
    install -d -m 0700 -o "$uid" -g "$gid" "$rt"
    made_rt=1
fi
as_core() {{
    setpriv --reuid="$uid" --regid="$gid" --init-groups \\
        env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" USER={CORE_USER} LOGNAME={CORE_USER} \\
        XDG_RUNTIME_DIR="$rt" PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$@"
}}
status=0
as_core podman --log-level=error image exists "$IMAGE" || as_core podman --log-level=error load -q -i "$ARCHIVE" || status=$?
if [ -n "$made_rt" ]; then
    # The rootless pause process lives in this unit's cgroup; systemd ends it when the unit exits.
    # logind later mounts a fresh tmpfs over $rt, so nothing of this run leaks into the session.
    rm -rf "$rt"
fi
exit "$status"
"""

PRELOAD_UNIT_TEXT = f"""[Unit]
Description=Preload the lab's busybox image into root's and {CORE_USER}'s podman storage
Documentation=file://{ARCHIVE_IN_IMAGE}
DefaultDependencies=no
After=local-fs.target systemd-tmpfiles-setup.service systemd-sysusers.service
Before=sysinit.target shutdown.target
Conflicts=shutdown.target
RequiresMountsFor={ROOT_STORAGE}
ConditionPathExists={ARCHIVE_IN_IMAGE}

[Service]
Type=oneshot
ExecStart={PRELOAD_SCRIPT}
TimeoutStartSec=120

[Install]
WantedBy=sysinit.target
"""


# ----------------------------------------------------------------------------------------------------
# Building the docker-archive


def applet_paths(busybox: pathlib.Path) -> list[str]:
    """Applet paths under bin/, sbin/ and usr/ (``bin/sh``, ``usr/bin/awk`` …) as this busybox lists them."""
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True).stdout
    paths = {line.strip().lstrip("/") for line in out.splitlines()}
    return sorted(p for p in paths if p.split("/")[0] in ("bin", "sbin", "usr") and p != "bin/busybox")


def _tarinfo(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
    return info


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    tar.addfile(_tarinfo(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))


def layer_tar(busybox: pathlib.Path, applets: Iterable[str]) -> bytes:
    """One uncompressed, reproducible layer: skeleton dirs, /bin/busybox, applet symlinks, passwd/group."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in SKELETON_DIRS:
            tar.addfile(_tarinfo(d, tarfile.DIRTYPE, 0o1777 if d in ("tmp", "var/tmp") else 0o755))
        _add_file(tar, "bin/busybox", busybox.read_bytes(), 0o755)
        for path in applets:
            tar.addfile(_tarinfo(path, tarfile.SYMTYPE, 0o777, linkname="/bin/busybox"))
        _add_file(tar, "etc/passwd", ETC_USERS.encode())
        _add_file(tar, "etc/group", ETC_GROUPS.encode())
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_config(layer_digest: str, arch: str) -> bytes:
    config = {
        "architecture": GOARCH.get(arch, arch),
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.title": "immutable-hosts lab busybox"},
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": CREATED, "created_by": "immutable_hosts.lab.oci_content (busybox-static)"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def archive_bytes(busybox: pathlib.Path, arch: str | None = None) -> bytes:
    """The docker-archive tarball of ``localhost/lab/busybox:latest`` for this busybox binary."""
    arch = arch or os.uname().machine
    layer = layer_tar(busybox, applet_paths(busybox))
    layer_digest = _sha256(layer)
    config = image_config(layer_digest, arch)
    config_digest = _sha256(config)
    manifest = [{"Config": f"{config_digest}.json", "RepoTags": [IMAGE_NAME], "Layers": [f"{layer_digest}/layer.tar"]}]
    repo, tag = IMAGE_NAME.rsplit(":", 1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_tarinfo(layer_digest, tarfile.DIRTYPE, 0o755))
        _add_file(tar, f"{layer_digest}/VERSION", b"1.0")
        _add_file(tar, f"{layer_digest}/layer.tar", layer)
        _add_file(tar, f"{config_digest}.json", config)
        _add_file(tar, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
        _add_file(tar, "repositories", json.dumps({repo: {tag: layer_digest}}).encode())
    return buf.getvalue()


def _write_if_changed(path: pathlib.Path, data: bytes, mode: int = 0o644) -> None:
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
    path.chmod(mode)


def build_archive(dest: pathlib.Path, busybox: pathlib.Path, arch: str | None = None) -> pathlib.Path:
    """Write the archive to ``dest`` (rewritten only when its bytes change) and return ``dest``."""
    _write_if_changed(dest, archive_bytes(busybox, arch))
    return dest


def find_busybox(rootfs: pathlib.Path | None = None) -> pathlib.Path:
    """busybox-static's binary: the image's own when ``rootfs`` has one, else the machine's."""
    roots = [rootfs] if rootfs is not None else []
    roots.append(pathlib.Path("/"))
    for root in roots:
        for rel in ("usr/bin/busybox", "bin/busybox"):
            candidate = root / rel
            if candidate.is_file() and not candidate.is_symlink():
                return candidate
    raise FileNotFoundError("busybox not found: install the Debian package busybox-static")


def build_server(server_dir: pathlib.Path) -> pathlib.Path:
    """Also publish the archive on the image server, as server_dir/oci/busybox.tar (idempotent)."""
    return build_archive(server_dir / "oci" / "busybox.tar", find_busybox())


# ----------------------------------------------------------------------------------------------------
# Image build time and host provisioning


def _under(root: pathlib.Path, path: pathlib.PurePosixPath) -> pathlib.Path:
    return root / str(path).lstrip("/")


def install_into_rootfs(rootfs: pathlib.Path) -> None:
    """Put the archive, the preload script and its enabled unit into the image (run as root)."""
    build_archive(_under(rootfs, ARCHIVE_IN_IMAGE), find_busybox(rootfs))
    _write_if_changed(_under(rootfs, PRELOAD_SCRIPT), PRELOAD_SH.encode(), 0o755)
    unit_dir = rootfs / "usr/lib/systemd/system"
    _write_if_changed(unit_dir / PRELOAD_UNIT, PRELOAD_UNIT_TEXT.encode())
    wants = rootfs / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / PRELOAD_UNIT
    if not link.is_symlink():
        link.symlink_to(f"/usr/lib/systemd/system/{PRELOAD_UNIT}")


def passwd_ids(root: pathlib.Path, user: str) -> tuple[int, int, str]:
    """(uid, gid, home) of ``user`` from the host's /etc/passwd."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    raise KeyError(f"user {user!r} not in {root}/etc/passwd")


def _make_owned_dirs(base: pathlib.Path, rel: pathlib.PurePosixPath, uid: int, gid: int) -> None:
    """Create base/rel component by component, each dir owned by uid:gid."""
    current = base
    for part in rel.parts:
        current = current / part
        current.mkdir(mode=0o700 if part == "storage" else 0o755, exist_ok=True)
        os.chown(current, uid, gid)


BUILD_LIMITS = pathlib.PurePosixPath("/etc/containers/containers.conf.d/50-immutable-hosts-lab-limits.conf")


def build_limits_conf() -> str:
    """containers.conf's default limits at the machine's own hard limits.  Without them, a build's RUN steps (buildah,
    as root) get RLIMIT_NOFILE and RLIMIT_NPROC raised to 1048576, above what the machine allows, and no lab host may
    raise a limit (the machine itself lacks CAP_SYS_RESOURCE); podman run lowers its own defaults, buildah does not."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    limits = [
        f"{name}={value}:{value}" for name, value in (("nofile", nofile), ("nproc", nproc)) if value != resource.RLIM_INFINITY
    ]
    return (
        "# immutable-hosts lab: the machine's hard limits, which no lab host can raise (written at provisioning)\n"
        "[containers]\ndefault_ulimits = [%s]\n" % ", ".join(f'"{limit}"' for limit in limits)
    )


def provision_host(root: pathlib.Path, storage_dirs: dict[str, pathlib.Path]) -> None:
    """Prepare a host before first boot so the preload unit fills both storages at boot.

    storage_dirs["root"] is bind-mounted at /var/lib/containers/storage, storage_dirs["core"] at
    /home/core/.local/share/containers/storage.  The core directory (and the chain of mount-point
    parents under /home/core in ``root``) must belong to core, or rootless podman cannot use them.
    """
    uid, gid, home = passwd_ids(root, CORE_USER)
    root_dir = storage_dirs["root"]
    root_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    core_dir = storage_dirs["core"]
    core_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(core_dir, uid, gid)
    _under(root, ROOT_STORAGE).mkdir(parents=True, exist_ok=True)
    home_dir = _under(root, pathlib.PurePosixPath(home))
    if not home_dir.is_dir():
        home_dir.mkdir(mode=0o700, parents=True)
        os.chown(home_dir, uid, gid)
    rel = CORE_STORAGE.relative_to(home)
    _make_owned_dirs(home_dir, rel, uid, gid)
    if not _under(root, ARCHIVE_IN_IMAGE).is_file():
        install_into_rootfs(root)
    _write_if_changed(_under(root, BUILD_LIMITS), build_limits_conf().encode())
