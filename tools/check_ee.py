"""Check the execution environment's build context that ``make ee`` wrote with ansible-builder (no registry is
reachable here, so the image itself is not built): the Containerfile's stages, the collection tarball it installs
(this checkout's collection, at galaxy.yml's version), the CLI wheel and its console script, and the collection's own
dependencies as ansible-builder's introspection finds them once the tarball is installed.

    python tools/check_ee.py build/ee
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def fail(message: str) -> None:
    print(f"check_ee: {message}", file=sys.stderr)
    sys.exit(1)


def main(context: Path) -> int:
    containerfile = context / "Containerfile"
    if not containerfile.is_file():
        fail(f"no Containerfile in {context}")
    text = containerfile.read_text()
    for needed in (
        'ARG EE_BASE_IMAGE="quay.io/fedora/fedora:42"',
        "ansible-galaxy collection install",
        "-r requirements.yml",
        "COPY _build/wheels/ /tmp/immutable-hosts-wheels/",
        "pip install --no-cache-dir --no-deps /tmp/immutable-hosts-wheels/*.whl",
        'ENTRYPOINT ["/opt/builder/bin/entrypoint", "dumb-init"]',
    ):
        if needed not in text:
            fail(f"the Containerfile lacks {needed!r}")

    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    tarball = context / "_build" / "collections" / "immutable-hosts.tar.gz"
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
        names = set(archive.getnames())
    info = manifest["collection_info"]
    if (info["namespace"], info["name"], info["version"]) != (galaxy["namespace"], galaxy["name"], galaxy["version"]):
        fail(f"the tarball is {info['namespace']}.{info['name']} {info['version']}, not this checkout's collection")
    for member in ("meta/runtime.yml", "meta/execution-environment.yml", "plugins/callback/drift.py", "roles/workstation"):
        if member not in names:
            fail(f"the tarball lacks {member}")
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    if requirements != {"collections": [{"name": "/build/collections/immutable-hosts.tar.gz", "type": "file"}]}:
        fail(f"requirements.yml is {requirements}")

    wheels = sorted((context / "_build" / "wheels").glob("immutable_hosts-*.whl"))
    if len(wheels) != 1:
        fail(f"expected one immutable_hosts wheel, found {[w.name for w in wheels]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        entry_points = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
        if "immutable-hosts = immutable_hosts.cli:main" not in wheel.read(entry_points).decode():
            fail("the wheel has no immutable-hosts console script")

    # What ansible-builder collects from the installed collection (its meta/execution-environment.yml).
    with tempfile.TemporaryDirectory(prefix="check-ee-") as temp:
        installed = Path(temp) / "collections"
        galaxy_tool = Path(sys.executable).parent / "ansible-galaxy"
        subprocess.run(
            [str(galaxy_tool), "collection", "install", "--offline", "--force", "-p", str(installed), str(tarball)],
            check=True,
            capture_output=True,
        )
        builder = Path(sys.executable).parent / "ansible-builder"
        done = subprocess.run(
            [str(builder), "introspect", "--sanitize", str(installed)], check=True, capture_output=True, text=True
        )
    found = yaml.safe_load(done.stdout)
    system = "\n".join(found.get("system") or [])
    if "openssh-clients [platform:rpm]" not in system:
        fail(f"ansible-builder does not find the collection's system requirements: {found}")
    print(f"   {containerfile}: base quay.io/fedora/fedora:42, {wheels[0].name}, immutable.hosts {info['version']}")
    print(f"   the collection's dependencies as ansible-builder finds them: system {found.get('system')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
