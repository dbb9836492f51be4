"""``immutable-hosts image build`` on a lab host: the group's image built with the host's real Podman 5.4 FROM the lab
registry's Silverblue 42 by digest, pushed to the lab registry and signed (sigstore, a key made on the build host with
``skopeo generate-sigstore-key``), then pulled by the rpm-ostree simulator through the host's containers/image stack
under a policy that trusts only that key.

A lab of its own (a temp state dir sharing the default lab's image cache, as test_drift_cli.py does) with one
silverblue host, ``image-1``, which is the build host and the host that follows the image. The inventory is the lab's
with group_vars next to it, as a user's would be. A second build of the unchanged inventory builds nothing and
leaves the Containerfile as it was; ``--check`` says nothing would change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SRC, state_dir_of_its_own

from immutable_hosts.lab import ostree_content
from immutable_hosts.lab.api import Lab as LabAPI

pytestmark = pytest.mark.lab

HOST = "image-1"
IMAGE = "registry.lab:5000/fleet/silverblue:42"
REPOSITORY = IMAGE.rsplit(":", 1)[0]
KEY = "/etc/immutable-hosts/fleet"
PASSPHRASE = "lab fleet key passphrase"
CONTEXT = "/var/tmp/image-silverblue"


@pytest.fixture(scope="module")
def image_lab(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path) -> Iterator[Path]:
    state_dir = state_dir_of_its_own(tmp_path_factory, lab_state_dir, "lab-image")
    try:
        LabAPI(state_dir).up(hosts=1, profile="silverblue", name="image")
        yield state_dir
    finally:
        LabAPI(state_dir).down()


def on_host(state_dir: Path, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return LabAPI(state_dir).exec(HOST, list(command), check=False)
    # The lab's exec has no stdin; a passphrase goes through a file only root can read, removed at once.
    LabAPI(state_dir).exec(HOST, ["sh", "-c", 'umask 077; printf "%s\\n" "$1" > /run/lab-stdin', "sh", stdin], check=True)
    try:
        return LabAPI(state_dir).exec(HOST, ["sh", "-c", '"$@" < /run/lab-stdin', "sh", *command], check=False)
    finally:
        LabAPI(state_dir).exec(HOST, ["rm", "-f", "/run/lab-stdin"], check=False)


def immutable_hosts(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "immutable_hosts.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def base_digest(state_dir: Path) -> str:
    return ostree_content.catalogue(state_dir / "server")["quay.io/fedora/fedora-silverblue:42"]["index-digest"]


def group_vars(state_dir: Path) -> None:
    text = {
        "os_image_image": "quay.io/fedora/fedora-silverblue:42",
        "os_image_packages": ["htop", "tmux"],
        "os_image_kargs": ["preempt=full"],
        "flatpak_remotes": [],
        "flatpak_apps": [],
        "image_build_host": HOST,
        "image_build_path": CONTEXT,
        "image_build_base_image": "quay.io/fedora/fedora-silverblue@" + base_digest(state_dir),
        "image_build_image": IMAGE,
        "image_build_sigstore_private_key": KEY + ".private",
        "image_build_sigstore_passphrase": PASSPHRASE,
    }
    directory = state_dir / "group_vars"
    directory.mkdir(exist_ok=True)
    (directory / "silverblue.yml").write_text(json.dumps(text, indent=2) + "\n")


def build(state_dir: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return immutable_hosts("image", "build", "-i", str(state_dir / "inventory.yml"), "--group", "silverblue", *more)


def digest_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("digest: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("digest: ")


def trust(state_dir: Path, public_key: str) -> None:
    """The host trusts ``public_key`` (a path on the host) for the fleet's repository, and nothing else (rpm-ostree
    refuses a signed image under a default that accepts anything)."""
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                REPOSITORY: [{"type": "sigstoreSigned", "keyPath": public_key, "signedIdentity": {"type": "matchRepository"}}]
            }
        },
    }
    attachments = "docker:\n  registry.lab:5000: {use-sigstore-attachments: true}\n"
    script = 'mkdir -p /etc/containers/registries.d && printf "%s" "$1" > /etc/containers/policy.json && printf "%s" "$2" > /etc/containers/registries.d/fleet.yaml'
    done = on_host(state_dir, "sh", "-c", script, "sh", json.dumps(policy), attachments)
    assert done.returncode == 0, done.stderr


def test_group_image_built_pushed_signed_and_followed_by_digest(image_lab: Path) -> None:
    made = on_host(
        image_lab, "sh", "-c", "mkdir -p /etc/immutable-hosts && skopeo generate-sigstore-key --output-prefix %s "
        "--passphrase-file /dev/stdin" % KEY, stdin=PASSPHRASE,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    group_vars(image_lab)

    first = build(image_lab)
    assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
    assert f"image {IMAGE}: built and pushed" in first.stdout
    assert "signed: yes (sigstore)" in first.stdout
    reference = digest_line(first.stdout)
    assert reference.startswith(REPOSITORY + "@sha256:")
    containerfile = on_host(image_lab, "cat", CONTEXT + "/Containerfile").stdout
    assert '["dnf", "-y", "install", "htop", "tmux"]' in containerfile

    # The registry holds the image by that digest, with the context it came from and the signature attached.
    inspected = json.loads(on_host(image_lab, "skopeo", "inspect", "--no-tags", "docker://" + IMAGE).stdout)
    assert REPOSITORY + "@" + inspected["Digest"] == reference
    assert inspected["Labels"]["io.immutable-hosts.context"].startswith("sha256:")
    assert inspected["Labels"]["io.immutable-hosts.source"] == "group silverblue"

    # Unchanged inventory: nothing built, the same digest, the same Containerfile; a check says nothing would change.
    second = build(image_lab)
    assert second.returncode == 0, f"{second.stdout}\n{second.stderr}"
    assert f"image {IMAGE}: up to date" in second.stdout and "written: no change" in second.stdout
    assert digest_line(second.stdout) == reference
    assert on_host(image_lab, "cat", CONTEXT + "/Containerfile").stdout == containerfile
    check = build(image_lab, "--check")
    assert check.returncode == 0, f"{check.stdout}\n{check.stderr}"
    assert "would change: nothing" in check.stdout and f"image {IMAGE}: up to date" in check.stdout

    # A policy that trusts another key refuses the image: the signature is checked, not merely present.
    other = on_host(image_lab, "skopeo", "generate-sigstore-key", "--output-prefix", "/etc/immutable-hosts/other",
                    "--passphrase-file", "/dev/stdin", stdin="other")  # fmt: skip
    assert other.returncode == 0, other.stderr
    trust(image_lab, "/etc/immutable-hosts/other.pub")
    signed = "ostree-image-signed:docker://" + reference
    refused = on_host(image_lab, "rpm-ostree", "rebase", signed)
    assert refused.returncode != 0 and "signature" in (refused.stderr + refused.stdout).lower(), refused

    # Trusting the fleet key, rpm-ostree follows the image by digest; what dnf installed in the build is base content.
    trust(image_lab, KEY + ".pub")
    rebased = on_host(image_lab, "rpm-ostree", "rebase", signed)
    assert rebased.returncode == 0, rebased.stderr
    assert "htop-" in rebased.stdout and "tmux-" in rebased.stdout
    status = json.loads(on_host(image_lab, "rpm-ostree", "status", "--json").stdout)
    staged = status["deployments"][0]
    assert staged["container-image-reference"] == signed
    assert staged["container-image-reference-digest"] == reference.split("@", 1)[1]
    pkglist = on_host(
        image_lab, "ostree", "show", "--repo=/ostree/repo", "--print-metadata-key=rpmostree.rpmdb.pkglist", staged["checksum"]
    )
    assert pkglist.returncode == 0, pkglist.stderr
    assert "'htop'" in pkglist.stdout and "'tmux'" in pkglist.stdout and "'bash'" in pkglist.stdout
