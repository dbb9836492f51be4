"""The immutable-hosts wheel carries the collection (setup.py): built from this checkout, it holds what the Galaxy
tarball holds and nothing of the development tree, and installed where no collection is configured, the CLI finds
its own copy."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = "immutable_hosts/_collection/ansible_collections/immutable/hosts/"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed: {done.stderr[-2000:]}")
    (found,) = out.glob("immutable_hosts-*.whl")
    return found


def test_the_wheel_holds_the_collection_and_nothing_of_the_development_tree(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    bundled = {name[len(PREFIX) :] for name in names if name.startswith(PREFIX)}
    for needed in (
        "galaxy.yml",
        "meta/runtime.yml",
        "plugins/callback/drift.py",
        "playbooks/drift.yml",
        "roles/workstation/tasks/main.yml",
    ):
        assert needed in bundled
    assert not [
        n for n in bundled if n.startswith(("tests/cli/", "tests/lab/", "src/", "bench/", "tools/", ".lab")) or "__pycache__" in n
    ]
    assert "immutable_hosts/cli.py" in names


def test_installed_alone_the_cli_finds_its_own_collection(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "home"), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    script = "from immutable_hosts import drift\nwith drift.collection_path() as (value, root):\n    print(root)\n"
    # -S: only the wheel's copy of the package (not this checkout's editable install); ansible-config runs as itself
    done = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == site / PREFIX.rstrip("/")
