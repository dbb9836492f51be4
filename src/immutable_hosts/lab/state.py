"""Lab state: where the lab keeps its files, which hosts exist, and the lock that serialises up/down.

Everything the lab creates on the machine is recorded in ``<state>/lab.json`` so that ``lab down`` can undo it
even after a crash: processes (by PID and start time, never by name), network namespaces, veths and mounts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from immutable_hosts.files import write_durably

STATE_ENV = "IMMUTABLE_HOSTS_LAB_DIR"
PROFILES = ("silverblue", "kinoite", "apple-silicon", "bootc", "bootc-only")
SERVER_PORT = 8088
SERVER_NAME = "images.lab"
SERVER_URL = f"http://{SERVER_NAME}:{SERVER_PORT}"


def write_whole(path: Path, text: str) -> None:
    """A state file other processes read while it changes, and that must survive a power cut."""
    write_durably(path, text, 0o644)


def repo_root() -> Path:
    """The checkout root: the first parent of this file that holds ``src/immutable_hosts``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "src" / "immutable_hosts").is_dir():
            return parent
    return Path.cwd()


def resolve_state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).resolve()
    from_env = os.environ.get(STATE_ENV)
    if from_env:
        return Path(from_env).resolve()
    return repo_root() / ".lab"


def process_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a PID, or None if it does not exist; guards against PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields after the last ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped
        return None
    return int(fields[19])


@dataclasses.dataclass(frozen=True)
class ProcessRef:
    """A process the lab started, identified by PID plus start time."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        start = process_start_time(pid)
        if start is None:
            raise ProcessLookupError(pid)
        return cls(pid, start)

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_time": self.start_time}

    @classmethod
    def from_json(cls, data: dict[str, int] | None) -> ProcessRef | None:
        return cls(int(data["pid"]), int(data["start_time"])) if data else None


@dataclasses.dataclass
class HostRecord:
    name: str
    index: int
    profile: str
    image: str
    supervisor: ProcessRef | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "profile": self.profile,
            "image": self.image,
            "supervisor": self.supervisor.to_json() if self.supervisor else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostRecord:
        return cls(
            name=data["name"],
            index=int(data["index"]),
            profile=data["profile"],
            image=data["image"],
            supervisor=ProcessRef.from_json(data.get("supervisor")),
        )


class LabState:
    """Paths and the persistent record of one lab (one state directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hosts: dict[str, HostRecord] = {}
        self.server: ProcessRef | None = None
        self.load()

    # --- paths -----------------------------------------------------------------------------------------
    @property
    def lab_id(self) -> str:
        """Short id of this state dir; keeps kernel object names (netns, veth) of two labs apart."""
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:4]

    @property
    def record_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "lab.lock"

    @property
    def image_dir(self) -> Path:
        return self.root / "image"

    @property
    def server_dir(self) -> Path:
        return self.root / "server"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def control_dir(self) -> Path:
        return self.root / "cp"

    @property
    def inventory_file(self) -> Path:
        return self.root / "inventory.yml"

    def host_dir(self, name: str) -> Path:
        # A name from a hand-edited state file must not lead out of hosts/ either (lab down removes this directory).
        if not name or "/" in name or name in (".", "..") or name != name.strip() or "\x00" in name:
            raise ValueError(f"lab: {name!r} is not a host name")
        return self.hosts_dir / name

    # --- persistence -----------------------------------------------------------------------------------
    def load(self) -> None:
        if not self.record_file.exists():
            return
        data = json.loads(self.record_file.read_text())
        self.hosts = {h["name"]: HostRecord.from_json(h) for h in data.get("hosts", [])}
        self.server = ProcessRef.from_json(data.get("server"))

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "hosts": [h.to_json() for h in sorted(self.hosts.values(), key=lambda h: h.index)],
            "server": self.server.to_json() if self.server else None,
        }
        write_whole(self.record_file, json.dumps(data, indent=2) + "\n")

    def free_index(self, taken: set[int]) -> int:
        used = {h.index for h in self.hosts.values()} | taken
        index = 0
        while index in used:
            index += 1
        return index

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise commands that change the lab (up, down, publish)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self.load()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
