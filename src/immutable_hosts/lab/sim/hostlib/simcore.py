"""Shared core of the lab's rpm-ostree and bootc simulators (runs inside lab hosts).

Python 3 stdlib only, plus the real ``ostree`` CLI.  Every path is taken relative to
the root prefix ``$IMMUTABLE_HOSTS_SIM_ROOT`` (default ``/``) so the simulators can drive a
sysroot in a temp dir on the machine (contract tests) exactly as they drive ``/`` in a host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import struct
import subprocess
import time
from pathlib import Path

# The simulators stand in for C programs, so they import little: typing only for type checkers, no dataclasses
# (with inspect, about 8 ms of every rpm-ostree call).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT_ENV = "IMMUTABLE_HOSTS_SIM_ROOT"
CATALOGUE_REL = "usr/share/rpm-ostree-sim/repos.json"
SIM_RUN_REL = "run/rpm-ostree-sim"
UNFINALIZED_REL = "var/lib/rpm-ostree-sim/unfinalized.json"


class SimError(Exception):
    """An error reported as ``error: MESSAGE`` on stderr with exit 1."""


def root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "/")


def rpath(rel: str) -> Path:
    return root() / rel.lstrip("/")


def run_dir() -> Path:
    d = rpath(SIM_RUN_REL)
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------- ostree CLI
def ostree_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OSTREE_SYSROOT_DEBUG"] = "mutable-deployments"
    env.pop("OSTREE_SYSROOT", None)
    env.pop("OSTREE_REPO", None)
    return env


def _prefix_remotes() -> list[str]:
    """Remote names from PREFIX/etc/ostree/remotes.d missing from the repo config (prefix mode only).

    ``ostree admin --sysroot=PREFIX`` reads PREFIX/etc/ostree/remotes.d, but ``ostree pull --repo=...`` does
    not; pulls in prefix mode therefore add those remotes to the repo config for the duration of the pull.
    """
    if root() == Path("/"):
        return []
    config = rpath("ostree/repo/config").read_text()
    added = []
    for conf in sorted(rpath("etc/ostree/remotes.d").glob("*.conf")):
        for group, kv in read_keyfile(conf).items():
            name = group.removeprefix('remote "').removesuffix('"')
            if f'[remote "{name}"]' not in config and kv.get("url"):
                subprocess.run(
                    ["ostree", "remote", "add", repo_arg(), "--no-gpg-verify", name, kv["url"]],
                    capture_output=True,
                    check=False,
                    env=ostree_env(),
                )
                added.append(name)
    return added


def ostree(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    added = _prefix_remotes() if args and args[0] == "pull" else []
    try:
        proc = subprocess.run(["ostree", *args], capture_output=True, text=True, env=ostree_env(), check=False)
    finally:
        for name in added:
            subprocess.run(["ostree", "remote", "delete", repo_arg(), name], capture_output=True, check=False, env=ostree_env())
    if check and proc.returncode != 0:
        msg = proc.stderr.strip().removeprefix("error: ") or f"ostree {args[0]} failed"
        raise SimError(msg)
    return proc


def repo_arg() -> str:
    return f"--repo={rpath('ostree/repo')}"


def sysroot_arg() -> str:
    return f"--sysroot={root()}"


def admin(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return ostree("admin", args[0], sysroot_arg(), *args[1:], check=check)


_CHECKSUM = re.compile(r"^[0-9a-f]{64}\Z")


def resolve_rev(rev: str) -> str | None:
    """A ref's commit: read from the ref's own file in the repository when there is one (what ``ostree rev-parse``
    reads too), else through ``ostree rev-parse``."""
    remote, _, ref = rev.rpartition(":")
    ref_file = rpath("ostree/repo/refs/%s/%s" % ("remotes/" + remote if remote else "heads", ref))
    if ref and ".." not in ref.split("/"):
        try:
            found = ref_file.read_text().strip()
        except OSError:
            found = ""
        if _CHECKSUM.match(found):
            return found
    proc = ostree("rev-parse", repo_arg(), rev, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


# ---------------------------------------------------------------- GVariant text
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<hex>0x[0-9a-fA-F]+)|"
    r"(?P<num>-?\d+(?:\.\d+)?)|(?P<punct>[\[\]{}()<>,:])|(?P<word>@?[A-Za-z0-9_{}()]+))"
)
_TYPE_WORDS = {"byte", "int16", "uint16", "int32", "uint32", "int64", "uint64", "handle", "double", "objectpath", "signature"}


def _unescape(s: str) -> str:
    body = s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse GVariant text at {text[pos : pos + 30]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("eof", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def value(self) -> Any:
        kind, val = self.take()
        if kind == "word" and (val.startswith("@") or val in _TYPE_WORDS):
            return self.value()
        if kind == "str":
            return _unescape(val)
        if kind in ("num", "hex"):
            return _signed(int(val, 0)) if "." not in val else float(val)
        if kind == "word":
            return {"true": True, "false": False, "nothing": None}.get(val, val)
        if val == "<":
            inner = self.value()
            self.take()
            return inner
        if val in "[(":
            return self._seq("]" if val == "[" else ")")
        if val == "{":
            return self._dict()
        raise ValueError(f"unexpected token {val!r}")

    def _seq(self, close: str) -> list[Any]:
        items: list[Any] = []
        while self.peek()[1] != close:
            items.append(self.value())
            if self.peek()[1] == ",":
                self.take()
        self.take()
        return items

    def _dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while self.peek()[1] != "}":
            key = self.value()
            self.take()  # ':'
            out[str(key)] = self.value()
            if self.peek()[1] == ",":
                self.take()
        self.take()
        return out


def _signed(n: int) -> int:
    """json-glib maps uint64 through gint64: values above 2**63-1 come out negative."""
    return n - (1 << 64) if n >= (1 << 63) else n


def parse_gvariant_text(text: str) -> Any:
    return _Parser(text).value()


# ---------------------------------------------------------------- GVariant binary (/run/ostree-booted)
def _pad(buf: bytearray, align: int) -> None:
    while len(buf) % align:
        buf.append(0)


def encode_booted_metadata(dev: int, ino: int) -> bytes:
    """Serialise ``{'backing-root-device-inode': <(uint64 dev, uint64 ino)>}`` as GVariant a{sv}."""
    key = b"backing-root-device-inode\0"
    entry = bytearray(key)
    _pad(entry, 8)
    entry += struct.pack("<QQ", dev, ino) + b"\0(tt)"
    key_end = len(key)
    entry.append(key_end)  # framing offset of the key (entry < 256 bytes)
    array = bytearray(entry)
    array.append(len(entry))  # end offset of the only element
    return bytes(array)


# ---------------------------------------------------------------- commits
class Record:
    """A plain record: its fields in ``FIELDS``, compared and shown by them (what the simulators used dataclasses for)."""

    FIELDS: tuple = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.FIELDS))


class CommitInfo(Record):
    FIELDS = ("checksum", "metadata", "parent", "timestamp")

    def __init__(self, checksum: str, metadata: dict[str, Any], parent: str | None, timestamp: int) -> None:
        self.checksum, self.metadata, self.parent, self.timestamp = checksum, metadata, parent, timestamp


_COMMIT_CACHE: dict[str, CommitInfo] = {}


COMMIT_CACHE_REL = "var/cache/rpm-ostree-sim/commits"


def commit_info(checksum: str) -> CommitInfo:
    """A commit's metadata, parent and timestamp.  A commit never changes, so what ``ostree show`` said of it is kept
    on disk, as rpm-ostreed keeps it in memory: a status costs no ``ostree`` process for a commit read before."""
    if checksum in _COMMIT_CACHE:
        return _COMMIT_CACHE[checksum]
    cached = rpath(COMMIT_CACHE_REL) / (checksum + ".json")
    info = None
    if _CHECKSUM.match(checksum):
        try:
            data = json.loads(cached.read_text())
            info = CommitInfo(checksum, data["metadata"], data["parent"], data["timestamp"])
        except (OSError, ValueError, KeyError, TypeError):
            info = None
    if info is None:
        proc = ostree("show", repo_arg(), "--raw", checksum)
        text = proc.stdout.split("\n", 1)[1] if proc.stdout.startswith("commit ") else proc.stdout
        raw = parse_gvariant_text(text.strip())
        meta, parent, _related, _subject, _body, ts = raw[:6]
        parent_hex = bytes(b & 0xFF for b in parent).hex() if parent else None
        info = CommitInfo(checksum, dict(meta), parent_hex, int(ts))
        try:
            record = json.dumps({"metadata": info.metadata, "parent": info.parent, "timestamp": info.timestamp})
        except (TypeError, ValueError):
            record = None  # metadata JSON cannot hold (bytes): read from ostree each time
        if record is not None and _CHECKSUM.match(checksum):
            cached.parent.mkdir(parents=True, exist_ok=True)
            temp = cached.with_suffix(".tmp.%d" % os.getpid())
            temp.write_text(record)
            os.replace(temp, cached)
    _COMMIT_CACHE[checksum] = info
    return info


# ---------------------------------------------------------------- origin keyfiles
def read_keyfile(path: Path) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    cur: dict[str, str] | None = None
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[") and s.endswith("]"):
            cur = groups.setdefault(s[1:-1], {})
        elif "=" in s and cur is not None:
            k, v = s.split("=", 1)
            cur[k.strip()] = v.strip()
    return groups


def write_keyfile(groups: dict[str, dict[str, str]]) -> str:
    parts = []
    for name, kv in groups.items():
        if not kv:
            continue
        parts.append(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in kv.items()))
    return "\n".join(parts)


def kf_list(value: str | None) -> list[str]:
    return [x for x in (value or "").split(";") if x]


def kf_join(items: list[str]) -> str:
    return "".join(f"{x};" for x in items)


# ---------------------------------------------------------------- container references
_SIG_PREFIXES = (
    "ostree-unverified-registry:",
    "ostree-unverified-image:",
    "ostree-image-signed:",
    "ostree-remote-registry:",
    "ostree-remote-image:",
)


def is_container_ref(ref: str) -> bool:
    return ref.startswith(_SIG_PREFIXES)


class ImageRef(Record):
    FIELDS = ("sigverify", "transport", "name")

    def __init__(self, sigverify: str, transport: str, name: str) -> None:
        self.sigverify = sigverify  # "insecure" | "containerPolicy" | "ostreeRemote:NAME"
        self.transport, self.name = transport, name


def parse_image_ref(ref: str) -> ImageRef:
    def split_transport(rest: str) -> tuple[str, str]:
        if rest.startswith("docker://"):
            return "registry", rest[len("docker://") :]
        transport, _, name = rest.partition(":")
        return ("registry" if transport == "docker" else transport), name

    if ref.startswith("ostree-unverified-registry:"):
        return ImageRef("insecure", "registry", ref.split(":", 1)[1])
    if ref.startswith("ostree-remote-registry:"):
        remote, _, name = ref.split(":", 1)[1].partition(":")
        return ImageRef(f"ostreeRemote:{remote}", "registry", name)
    if ref.startswith("ostree-remote-image:"):
        remote, _, rest = ref.split(":", 1)[1].partition(":")
        t, n = split_transport(rest)
        return ImageRef(f"ostreeRemote:{remote}", t, n)
    kind, _, rest = ref.partition(":")
    t, n = split_transport(rest)
    return ImageRef("containerPolicy" if kind == "ostree-image-signed" else "insecure", t, n)


def escape_ref_component(text: str) -> str:
    """ostree-ext style ref escaping: every char outside [A-Za-z0-9.-] becomes _XX_ (hex)."""
    return "".join(c if c.isalnum() or c in ".-" else f"_{ord(c):02X}_" for c in text)


def image_ref_for(name: str) -> str:
    return "ostree/container/image/" + escape_ref_component(f"docker://{name}")


# ---------------------------------------------------------------- catalogue & local RPMs
def load_catalogue() -> dict[str, Any]:
    path = rpath(CATALOGUE_REL)
    if not path.exists():
        raise SimError(f"package catalogue missing: {path}")
    return json.loads(path.read_text())


def split_nevra(nevra: str) -> tuple[str, int, str, str, str]:
    rest, arch = nevra.rsplit(".", 1)
    name_ver, release = rest.rsplit("-", 1)
    name, version = name_ver.rsplit("-", 1)
    epoch = 0
    if ":" in version:
        e, version = version.split(":", 1)
        epoch = int(e)
    return name, epoch, version, release, arch


def gv_str(text: str) -> str:
    """A GVariant text-format string (what ``ostree commit --add-metadata`` parses)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pkglist_gvariant(nevras: list[str]) -> str:
    """``rpmostree.rpmdb.pkglist`` in GVariant text: ``a(stsss)``, one (name, epoch, version, release, arch) each."""
    items = []
    for nevra in nevras:
        name, epoch, version, release, arch = split_nevra(nevra)
        items.append(f"({gv_str(name)}, uint64 {epoch}, {gv_str(version)}, {gv_str(release)}, {gv_str(arch)})")
    return "@a(stsss) [" + ", ".join(items) + "]"


def nevra_tuple(nevra: str) -> list[Any]:
    name, epoch, version, release, arch = split_nevra(nevra)
    return [nevra, name, epoch, version, release, arch]


def read_local_rpm(path: Path) -> dict[str, Any]:
    """NEVRA and checksum of a local RPM, read from its header by the real ``rpm`` tool."""
    if not path.is_file():
        raise SimError(f"Failed to open {path}: No such file or directory")
    query = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}"
    done = subprocess.run(["rpm", "-qp", "--nosignature", "--qf", query, str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SimError(f"Failed to read package header of {path}: {done.stderr.strip()}")
    name, epoch, version, release, arch = done.stdout.split("\t")
    evr = f"{epoch}:{version}-{release}" if epoch != "0" else f"{version}-{release}"
    info: dict[str, Any] = {"name": name, "epoch": int(epoch), "version": version, "release": release, "arch": arch}
    info["nevra"] = f"{name}-{evr}.{arch}"
    info["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return info


# ---------------------------------------------------------------- deployments
class Deployment(Record):
    FIELDS = ("index", "osname", "checksum", "serial", "pinned", "unlocked", "booted", "staged", "finalization_locked", "origin")

    def __init__(self, index: int, osname: str, checksum: str, serial: int) -> None:
        self.index, self.osname, self.checksum, self.serial = index, osname, checksum, serial
        self.pinned = False
        self.unlocked = "none"
        self.booted = False
        self.staged = False
        self.finalization_locked = False
        self.origin: dict[str, dict[str, str]] = {}

    @property
    def name(self) -> str:
        return f"{self.checksum}.{self.serial}"

    @property
    def id(self) -> str:
        return f"{self.osname}-{self.checksum}.{self.serial}"

    @property
    def path(self) -> Path:
        return rpath(f"ostree/deploy/{self.osname}/deploy/{self.name}")

    @property
    def origin_path(self) -> Path:
        return rpath(f"ostree/deploy/{self.osname}/deploy/{self.name}.origin")


_HEADER = re.compile(r"^([* ]) (\S+) ([0-9a-f]{64})\.(\d+)")


def list_deployments() -> list[Deployment]:
    out = admin("status").stdout
    deps: list[Deployment] = []
    for line in out.splitlines():
        m = _HEADER.match(line)
        if m:
            deps.append(Deployment(len(deps), m.group(2), m.group(3), int(m.group(4))))
            continue
        if not deps:
            continue
        s = line.strip()
        if s == "Pinned: yes":
            deps[-1].pinned = True
        elif s.startswith("Unlocked: "):
            deps[-1].unlocked = s.split(": ", 1)[1]
    booted = read_state("booted")
    staged = read_state("staged")
    for d in deps:
        d.booted = bool(booted) and booted.get("deployment") == d.name
        if staged and staged.get("deployment") == d.name and d.index == 0:
            d.staged = True
            d.finalization_locked = bool(staged.get("locked"))
        if d.origin_path.exists():
            d.origin = read_keyfile(d.origin_path)
    return deps


def booted_deployment(deps: list[Deployment]) -> Deployment | None:
    return next((d for d in deps if d.booted), None)


def bls_entries() -> list[Path]:
    return sorted(rpath("boot/loader/entries").glob("ostree-*.conf"))


def ostree_kargs(options: str) -> list[str]:
    """An ``options`` line as libostree tokenizes it (split_kernel_args): at spaces outside double quotes, quotes kept."""
    tokens = re.findall(r'(?:[^ "]|"[^"]*(?:"|$))+', options)
    return [token for token in tokens if token]


def kargs_of(dep: Deployment) -> list[str]:
    for entry in bls_entries():
        for line in entry.read_text().splitlines():
            if not line.startswith("options "):
                continue
            opts = ostree_kargs(line.split(None, 1)[1])
            target = next((o.split("=", 1)[1] for o in opts if o.startswith("ostree=")), "")
            link = rpath(target)
            if link.is_symlink() and Path(os.readlink(link)).name == dep.name:
                return opts
    return []


# ---------------------------------------------------------------- volatile state (/run)
def read_state(name: str) -> dict[str, Any] | None:
    path = run_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_state(name: str, value: dict[str, Any] | None) -> None:
    path = run_dir() / f"{name}.json"
    if value is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_unit() -> str:
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        for part in reversed(line.split(":", 2)[-1].split("/")):
            if part.endswith((".service", ".scope")):
                return part
    return ""


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- transactions
TXN_METHODS = {
    "install": "PkgChange",
    "uninstall": "PkgChange",
    "upgrade": "Upgrade",
    "update": "Upgrade",
    "rebase": "Rebase",
    "deploy": "Deploy",
    "rollback": "Rollback",
    "cleanup": "Cleanup",
    "kargs": "KernelArgs",
    "initramfs": "SetInitramfsState",
    "initramfs-etc": "InitramfsEtc",
    "override": "UpdateDeployment",
    "reset": "UpdateDeployment",
    "refresh-md": "RefreshMd",
    "finalize-deployment": "FinalizeDeployment",
    "automatic": "AutomaticUpdateTrigger",
}


def active_transaction() -> dict[str, Any] | None:
    txn = read_state("transaction")
    if txn and pid_alive(int(txn.get("pid", 0))):
        return txn
    return None


@contextlib.contextmanager
def transaction(title: str, osname: str = "fedora"):
    """Hold the (single) transaction; raise the busy error if another one is running."""
    lock = (run_dir() / "transaction.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        txn = active_transaction()
        lock.close()
        raise SimError(f"Transaction in progress: {txn['title'] if txn else title}") from None
    check_sysroot_lock(lock)
    write_state(
        "transaction",
        {
            "method": TXN_METHODS.get(title.split(" ", 1)[0], "UpdateDeployment"),
            "title": title,
            "sender": f":1.{os.getpid() % 1000}",
            "pid": os.getpid(),
            "objpath": "/org/projectatomic/rpmostree1/" + re.sub(r"[^A-Za-z0-9]", "_", osname),
            "initiator": os.environ.get("RPMOSTREE_CLIENT_ID", ""),
            "started": time.time(),
        },
    )
    try:
        yield
    finally:
        write_state("transaction", None)
        lock.close()


def check_sysroot_lock(txn_lock: Any) -> None:
    """Fail fast like rpm-ostreed when another process (ostree admin, bootc) holds the sysroot lock."""
    path = rpath("ostree/lock")
    if not path.exists():
        return
    with path.open("a") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            txn_lock.close()
            raise SimError("System transaction in progress") from None
        fcntl.lockf(fh, fcntl.LOCK_UN)


def read_daemon_config(reload: bool = False) -> dict[str, str]:
    cfg = read_state("config")
    if cfg is not None and not reload:
        return cfg
    path = rpath("etc/rpm-ostreed.conf")
    groups = read_keyfile(path) if path.exists() else {}
    daemon = groups.get("Daemon", {})
    policy = daemon.get("AutomaticUpdatePolicy", "none").lower()
    policy = {"off": "none", "ex-stage": "stage"}.get(policy, policy)
    if policy not in ("none", "check", "stage", "apply"):
        raise SimError(f"Invalid value for AutomaticUpdatePolicy: '{policy}'")
    cfg = {"AutomaticUpdatePolicy": policy, "LockLayering": daemon.get("LockLayering", "false").lower()}
    write_state("config", cfg)
    return cfg
