"""Snapshots of a lab host's immutable-relevant state, so tests can assert that check mode and failed runs
changed nothing.

A snapshot maps each path to a digest of what matters about it: file content, symlink target, or the sorted
entry list of a directory. It covers OSTree origin files, BLS entries, deployments and remotes, rpm-ostreed.conf,
Flatpak installations (installed refs and their active commits, remotes, overrides) for the system and for
``core``, Quadlet unit directories (system and ``core``), /etc/subuid, /etc/subgid and lingering users.

    before = snapshot(host)
    ... run something in check mode ...
    assert_unchanged(before, snapshot(host))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

# Runs on the host with its python3 (stdlib only). Prints {path: digest} as JSON.
COLLECTOR = r"""
import glob, hashlib, json, os, sys

FILE_GLOBS = [
    "/ostree/deploy/*/deploy/*.origin",
    "/boot/loader/entries/*.conf",
    "/ostree/repo/config",
    "/etc/ostree/remotes.d/*",
    "/etc/rpm-ostreed.conf",
    "/var/lib/flatpak/repo/config",
    "/var/lib/flatpak/overrides/*",
    "/etc/flatpak/remotes.d/*",
    "/etc/flatpak/installations.d/*",
    "/home/core/.local/share/flatpak/repo/config",
    "/home/core/.local/share/flatpak/overrides/*",
    "/etc/containers/systemd/**",
    "/home/core/.config/containers/systemd/**",
    "/etc/subuid",
    "/etc/subgid",
]
LISTINGS = [
    "/ostree/deploy/*/deploy",
    "/boot/loader/entries",
    "/var/lib/systemd/linger",
    "/etc/containers/systemd",
    "/home/core/.config/containers/systemd",
]
SYMLINK_GLOBS = [
    "/boot/loader",
    "/var/lib/flatpak/app/*/*/*/active",
    "/var/lib/flatpak/runtime/*/*/*/active",
    "/home/core/.local/share/flatpak/app/*/*/*/active",
    "/home/core/.local/share/flatpak/runtime/*/*/*/active",
]

def digest(data):
    return hashlib.sha256(data).hexdigest()

out = {}
for pattern in FILE_GLOBS:
    for path in glob.glob(pattern, recursive=True):
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as handle:
                out[path] = "file:" + digest(handle.read())
        elif os.path.islink(path):
            out[path] = "link:" + os.readlink(path)
for pattern in LISTINGS:
    for path in glob.glob(pattern):
        if os.path.isdir(path):
            out[path + "/"] = "dir:" + ",".join(sorted(os.listdir(path)))
for pattern in SYMLINK_GLOBS:
    for path in glob.glob(pattern):
        if os.path.islink(path):
            out[path] = "link:" + os.readlink(path)
json.dump(out, sys.stdout, sort_keys=True)
"""


@dataclasses.dataclass(frozen=True)
class HostAccess:
    """How to reach one lab host over SSH (root)."""

    name: str
    address: str
    key: Path
    known_hosts: Path

    @classmethod
    def from_state_dir(cls, state_dir: Path, name: str) -> HostAccess:
        from immutable_hosts.lab.network import HostNetwork
        from immutable_hosts.lab.state import LabState

        state = LabState(state_dir)
        record = state.hosts[name]
        net = HostNetwork.for_index(state.lab_id, record.index)
        return cls(name, str(net.host_address), state.ssh_dir / "id_ed25519", state.ssh_dir / "known_hosts")

    def run(self, argv: list[str], stdin: str | None = None, user: str = "root") -> subprocess.CompletedProcess[str]:
        from immutable_hosts.lab.ssh import remote_argv

        return subprocess.run(
            remote_argv(self.key, self.known_hosts, user, self.address, argv),
            input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def snapshot(host: HostAccess) -> dict[str, str]:
    done = host.run(["python3", "-"], stdin=COLLECTOR)
    if done.returncode != 0:
        raise RuntimeError(f"snapshot of {host.name} failed: {done.stderr}")
    return json.loads(done.stdout)


def snapshot_hash(state: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def diff_snapshots(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    keys = sorted(set(before) | set(after))
    return {k: (before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}


def assert_unchanged(before: dict[str, str], after: dict[str, str]) -> None:
    changes = diff_snapshots(before, after)
    assert not changes, "host state changed:\n" + "\n".join(f"  {k}: {a} -> {b}" for k, (a, b) in changes.items())
