"""pytest fixtures for tests against lab hosts.

``lab_session`` brings the hosts up once per test session and takes the whole lab down at the end, also when tests
fail or the session is interrupted. Which hosts: ``LAB_TEST_HOSTS`` (default ``DEFAULT_HOSTS``), a comma list of
``profile:count`` (hosts ``<profile>-1 …``) or ``profile:first-last`` (hosts ``<profile>-first … <profile>-last``), so
two sessions can split the hosts (``make lab-tests`` runs two streams, each on a lab of its own). The state dir is the lab default
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

from immutable_hosts.lab import api  # noqa: E402
from immutable_hosts.lab.state import resolve_state_dir  # noqa: E402


def lab_cli(*args: str, state_dir: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``immutable-hosts lab ARGS… --state-dir STATE_DIR`` as its own process, as a user would (the CLI's own
    tests); everything else drives the lab through its API (:class:`immutable_hosts.lab.api.Lab`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    # --state-dir goes right after the subcommand: after `exec HOST -- CMD` or `sim HOST ...` it would be an argument.
    argv = [sys.executable, "-m", "immutable_hosts.lab.cli", args[0], "--state-dir", str(state_dir), *args[1:]]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> rc {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [t for t in ("systemd-nspawn", "debootstrap", "ip", "ssh") if not shutil.which(t)]
    return f"missing tools: {' '.join(missing)}" if missing else None


# Hosts of the test session, one set of hosts per test file so files never share mutable state:
# OS-tree modules silverblue-1..4 and bootc-1; Flatpak modules kinoite-1 and silverblue-5; Podman modules silverblue-6;
# host_state silverblue-7; the registry silverblue-8; bootc alone (no rpm-ostree) bootc-only-1; a rollout by rings
# bootc-only-2 (the canary) and bootc-2.
DEFAULT_HOSTS = "silverblue:8,kinoite:1,bootc:2,bootc-only:2"


def requested_hosts() -> list[tuple[str, int, int]]:
    """``(profile, first, count)`` for each item of ``LAB_TEST_HOSTS``."""
    spec = os.environ.get("LAB_TEST_HOSTS", DEFAULT_HOSTS)
    wanted: list[tuple[str, int, int]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        profile, _, numbers = item.partition(":")
        first, dash, last = (numbers or "1").partition("-")
        if dash:
            wanted.append((profile, int(first), int(last) - int(first) + 1))
        else:
            wanted.append((profile, 1, int(first)))
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

    @property
    def lab(self) -> api.Lab:
        """The lab itself, through its API."""
        return api.Lab(self.state_dir)

    def exec(self, name: str, *command: str, user: str = "root") -> subprocess.CompletedProcess[str]:
        return self.lab.exec(name, list(command), user=user)


def state_dir_of_its_own(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path, name: str) -> Path:
    """A lab state dir for one test file's lab, sharing the default lab's image cache (skips when no lab can run)."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    state_dir = tmp_path_factory.mktemp(name)
    (lab_state_dir / "image").mkdir(parents=True, exist_ok=True)
    (state_dir / "image").symlink_to(lab_state_dir / "image")
    return state_dir


@pytest.fixture(scope="session", autouse=True)
def collection_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The collection as ``ansible_collections/immutable/hosts``, laid out fresh for this session from the checkout,
    and made the one Ansible loads (``ANSIBLE_COLLECTIONS_PATH``), so tests always run the code as it is now."""
    root = tmp_path_factory.mktemp("collections")
    subprocess.run(
        [sys.executable, str(HERE.parents[1] / "tools" / "collection_tree.py"), str(root)], check=True, capture_output=True
    )
    previous = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("ANSIBLE_COLLECTIONS_PATH", None)
    else:
        os.environ["ANSIBLE_COLLECTIONS_PATH"] = previous


@pytest.fixture(scope="session")
def lab_image_rootfs(lab_state_dir: Path) -> Path:
    """The unpacked lab image (Debian trixie with systemd, podman, flatpak, ostree), built or unpacked when needed;
    ``IMMUTABLE_HOSTS_LAB_ROOTFS`` names another one."""
    explicit = os.environ.get("IMMUTABLE_HOSTS_LAB_ROOTFS")
    if explicit:
        return Path(explicit)
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    from immutable_hosts.lab.image import Image

    image = Image.current(lab_state_dir / "image")
    image.ensure()
    return image.rootfs


@pytest.fixture(scope="session")
def lab_state_dir() -> Path:
    return resolve_state_dir()


@pytest.fixture(scope="session")
def lab_session(lab_state_dir: Path) -> Iterator[LabSession]:
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    hosts: dict[str, list[str]] = {}
    lab = api.Lab(lab_state_dir)
    try:
        for profile, first, count in requested_hosts():
            hosts.setdefault(profile, []).extend(lab.up(hosts=count, profile=profile, first=first))
        yield LabSession(lab_state_dir, lab.inventory, hosts)
    finally:
        if os.environ.get("LAB_KEEP") != "1":
            lab.down()


@pytest.fixture
def lab(lab_session: LabSession) -> Lab:
    """The Ansible harness bound to the session's inventory."""
    return lab_session.ansible()


@pytest.fixture
def lab_hosts(lab_session: LabSession):
    """``lab_hosts("silverblue-1", ...)`` returns the names, or skips the test when the session lacks one of them."""

    def need(*names: str) -> list[str]:
        missing = [name for name in names if name not in lab_session.all_hosts]
        if missing:
            pytest.skip(f"hosts {', '.join(missing)} are not in this session (LAB_TEST_HOSTS)")
        return list(names)

    return need
