"""pytest fixtures for tests against lab hosts.

``lab_session`` brings the hosts up once per test session and takes the whole lab down at the end, also when tests
fail or the session is interrupted. Which hosts: ``LAB_TEST_HOSTS`` (default ``silverblue:2``), a comma list of
``profile:count``; each profile's hosts are named ``<profile>-1 …``. The state dir is the lab default
(``IMMUTABLE_HOSTS_LAB_DIR`` or ``<repo>/.lab``), so the image cache is shared with manual ``lab up`` runs.
``LAB_KEEP=1`` leaves the hosts running after the session (for debugging; run ``lab down`` yourself).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SRC = HERE.parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from harness import Lab  # noqa: E402
from snapshot import HostAccess  # noqa: E402

from immutable_hosts.lab.state import resolve_state_dir  # noqa: E402


def lab_cli(*args: str, state_dir: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``immutable-hosts lab ARGS… --state-dir STATE_DIR`` as its own process, as a user would."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "immutable_hosts.lab.cli", *args, "--state-dir", str(state_dir)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> rc {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [t for t in ("systemd-nspawn", "debootstrap", "ip", "ssh") if not shutil.which(t)]
    return f"missing tools: {' '.join(missing)}" if missing else None


def requested_hosts() -> dict[str, int]:
    spec = os.environ.get("LAB_TEST_HOSTS", "silverblue:2")
    wanted: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        profile, _, count = item.partition(":")
        wanted[profile] = int(count or 1)
    return wanted


@dataclasses.dataclass
class LabSession:
    state_dir: Path
    inventory: Path
    hosts: dict[str, list[str]]  # profile -> host names

    @property
    def all_hosts(self) -> list[str]:
        return [name for names in self.hosts.values() for name in names]

    def ansible(self) -> Lab:
        return Lab(self.inventory)

    def access(self, name: str) -> HostAccess:
        return HostAccess.from_state_dir(self.state_dir, name)

    def exec(self, name: str, *command: str, user: str = "root") -> subprocess.CompletedProcess[str]:
        return lab_cli("exec", "--user", user, name, "--", *command, state_dir=self.state_dir, check=False)


@pytest.fixture(scope="session")
def lab_state_dir() -> Path:
    return resolve_state_dir()


@pytest.fixture(scope="session")
def lab_session(lab_state_dir: Path) -> Iterator[LabSession]:
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    hosts: dict[str, list[str]] = {}
    try:
        for profile, count in requested_hosts().items():
            lab_cli("up", "--profile", profile, "--hosts", str(count), state_dir=lab_state_dir)
            hosts[profile] = [f"{profile}-{i}" for i in range(1, count + 1)]
        inventory = Path(lab_cli("inventory", state_dir=lab_state_dir).stdout.strip())
        yield LabSession(lab_state_dir, inventory, hosts)
    finally:
        if os.environ.get("LAB_KEEP") != "1":
            lab_cli("down", state_dir=lab_state_dir, check=False)


@pytest.fixture
def lab(lab_session: LabSession) -> Lab:
    """The Ansible harness bound to the session's inventory."""
    return lab_session.ansible()
