"""Fixtures for contract tests: a real archive repo + real ostree sysroots in temp dirs, driven by the simulators.

Needs root and the ``ostree`` CLI (Debian package ``ostree``; ``e2fsprogs`` for chattr). The simulators run
against the temp sysroot through the root-prefix env var ``IMMUTABLE_HOSTS_SIM_ROOT``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from immutable_hosts.lab import ostree_content
from immutable_hosts.lab.sim import HOSTLIB

pytestmark = pytest.mark.skipif(
    shutil.which("ostree") is None or os.geteuid() != 0, reason="needs root and the ostree CLI (apt-get install ostree)"
)


@dataclass
class Host:
    root: Path
    server: Path

    def env(self) -> dict[str, str]:
        return dict(os.environ, IMMUTABLE_HOSTS_SIM_ROOT=str(self.root))

    def run(self, tool: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        script = HOSTLIB / ("bootc.py" if tool == "bootc" else "rpm_ostree.py")
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=self.env(), check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def rpm_ostree(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("rpm-ostree", *args, check=check)

    def status(self) -> dict[str, Any]:
        return json.loads(self.rpm_ostree("status", "--json").stdout)

    def bootc_status(self) -> dict[str, Any]:
        return json.loads(self.run("bootc", "status", "--format=json", check=True).stdout)

    def reboot(self) -> None:
        self.rpm_ostree("__fake-reboot")

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(HOSTLIB / "rpm_ostree.py"), *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ostree(self, *args: str) -> str:
        return subprocess.run(
            ["ostree", *args],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, OSTREE_SYSROOT_DEBUG="mutable-deployments"),
        ).stdout


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("server")
    ostree_content.build_server(d)
    return d


@pytest.fixture
def make_host(tmp_path: Path, server_dir: Path):
    created: list[Path] = []
    work_server = tmp_path / "server"
    shutil.copytree(server_dir, work_server, symlinks=True)

    def _make(profile: str = "silverblue") -> Host:
        root = tmp_path / f"host-{profile}-{len(created)}"
        ostree_content.provision_host(root, profile, work_server.as_uri())
        created.append(root)
        host = Host(root, work_server)
        host.rpm_ostree("__sim-boot")
        return host

    yield _make
    for root in created:
        ostree_content.cleanup_host(root)
        shutil.rmtree(root, ignore_errors=True)
