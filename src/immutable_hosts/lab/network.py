"""Per-host network: one network namespace and one veth pair per host, addressed from a private /30.

Host ``index`` gets ``10.213.0.0/18 + 4*index``: ``.1`` on the machine side, ``.2`` inside the host. There is no
default route and no forwarding, so a host can only talk to the machine-side address of its own veth (where the
lab's image server listens).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path

LAB_NETWORK = ipaddress.IPv4Network("10.213.0.0/18")
MAX_HOSTS = LAB_NETWORK.num_addresses // 4
HOST_IFNAME = "host0"
# Every lab on the machine takes this lock while it chooses address ranges and creates their veths: each lab's own
# lock is in its state directory, and two labs (a test stream and a molecule scenario, say) may come up together.
MACHINE_LOCK = Path("/run/lock/immutable-hosts-lab.lock")


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


@dataclasses.dataclass(frozen=True)
class HostNetwork:
    netns: str
    veth: str
    machine_address: ipaddress.IPv4Address
    host_address: ipaddress.IPv4Address

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @classmethod
    def for_index(cls, lab_id: str, index: int) -> HostNetwork:
        if not 0 <= index < MAX_HOSTS:
            raise ValueError(f"host index {index} outside the lab network {LAB_NETWORK}")
        base = LAB_NETWORK.network_address + 4 * index
        return cls(
            netns=f"ihl{lab_id}-{index}",
            veth=f"ihl{lab_id}v{index}",
            machine_address=base + 1,
            host_address=base + 2,
        )

    def exists(self) -> bool:
        return self.netns_path.exists()

    def create(self) -> None:
        """Create netns and veth; idempotent (a half-made pair is removed and rebuilt)."""
        if self.exists() and link_exists(self.veth):
            return
        self.remove()
        run(["ip", "netns", "add", self.netns])
        run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", HOST_IFNAME, "netns", self.netns])
        run(["ip", "addr", "add", f"{self.machine_address}/30", "dev", self.veth])
        run(["ip", "link", "set", self.veth, "up"])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.netns, "addr", "add", f"{self.host_address}/30", "dev", HOST_IFNAME])
        run(["ip", "-n", self.netns, "link", "set", HOST_IFNAME, "up"])

    def remove(self) -> None:
        if link_exists(self.veth):
            run(["ip", "link", "del", self.veth], check=False)
        if self.exists():
            run(["ip", "netns", "del", self.netns], check=False)


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    MACHINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(MACHINE_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def machine_addresses() -> set[ipaddress.IPv4Address]:
    """IPv4 addresses configured in the machine's own network namespace."""
    out = run(["ip", "-o", "-4", "addr", "show"]).stdout
    found: set[ipaddress.IPv4Address] = set()
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            found.add(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).ip)
    return found


def index_is_free(lab_id: str, index: int, ours: set[str]) -> bool:
    """True if the /30 of ``index`` is not used on the machine by anything but this lab's own veths."""
    net = HostNetwork.for_index(lab_id, index)
    if net.veth in ours:
        return True
    subnet = ipaddress.IPv4Network(f"{net.machine_address}/30", strict=False)
    return not any(addr in subnet for addr in machine_addresses())
