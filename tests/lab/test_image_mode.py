"""Image mode on the demo fleet's silverblue group, the whole story: two hosts layering on the signed Silverblue 42
image as ``make demo`` converges them (htop, tmux and starship from the lab's COPR hub, a kernel argument, Flatpaks,
a rootless container); the group's image built from the same inventory with the real Podman 5.4 of one of them (FROM
that image by digest, the COPR project in the image for the image's own release), pushed to the lab registry and
signed (sigstore, a key made on the build host with ``skopeo generate-sigstore-key``); both hosts switched to it by
digest with ``os_image_mode: image`` (one reboot each, the layered requests the image provides dropped in the same
transaction); ``immutable-hosts drift`` clean; a package layered by hand reported as drift.

A lab of its own (a temp state dir sharing the default lab's image cache) with two silverblue hosts, ``image-1`` (also
the build host) and ``image-2``. The inventory is the lab's with the demo's group_vars next to it (tools/demo), plus
what image mode adds, as a user's would be. A second build of the unchanged inventory builds nothing and leaves the
Containerfile as it was; ``--check`` says nothing would change; the rpm-ostree simulator refuses the image under a
policy that trusts another key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import SRC, state_dir_of_its_own
from harness import Lab

from immutable_hosts.lab import ostree_content, registry
from immutable_hosts.lab.api import Lab as LabAPI
from immutable_hosts.lab.state import LabState

pytestmark = pytest.mark.lab

HOST = "image-1"
HOSTS = ["image-1", "image-2"]
DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo" / "group_vars"
IMAGE = "registry.lab:5000/fleet/silverblue:42"
REPOSITORY = IMAGE.rsplit(":", 1)[0]
KEY = "/etc/immutable-hosts/fleet"
PASSPHRASE = "lab fleet key passphrase"
CONTEXT = "/var/tmp/image-silverblue"
SITE = Path(__file__).resolve().parents[2] / "playbooks" / "site.yml"


@pytest.fixture(scope="module")
def image_lab(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path) -> Iterator[Path]:
    state_dir = state_dir_of_its_own(tmp_path_factory, lab_state_dir, "lab-image")
    try:
        LabAPI(state_dir).up(hosts=len(HOSTS), profile="silverblue", name="image")
        yield state_dir
    finally:
        LabAPI(state_dir).down()


def on_host(state_dir: Path, *command: str, stdin: str | None = None, host: str = HOST) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return LabAPI(state_dir).exec(host, list(command), check=False)
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


def group_vars(state_dir: Path, mode: str) -> None:
    """The demo's desired state (tools/demo/group_vars, its key next to the inventory, as ``make demo`` lays them out),
    and what image mode adds to the silverblue group: where the image is built and pushed, the key that signs it, the
    trust of that key, and the mode."""
    directory = state_dir / "group_vars"
    shutil.copytree(DEMO, directory, dirs_exist_ok=True)
    keys = state_dir / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copyfile(registry.public_keys(LabState(state_dir))["fedora"], keys / "fedora.pub")
    (keys / "fleet.pub").write_text(on_host(state_dir, "cat", KEY + ".pub").stdout)
    silverblue = yaml.safe_load((DEMO / "silverblue.yml").read_text())
    silverblue["os_image_trust"].append(
        {"scope": REPOSITORY, "key": "{{ lookup('ansible.builtin.file', inventory_dir ~ '/keys/fleet.pub') }}"}
    )
    silverblue.update(
        {
            "os_image_mode": mode,
            "image_build_host": HOST,
            "image_build_path": CONTEXT,
            "image_build_base_image": "quay.io/fedora/fedora-silverblue@" + base_digest(state_dir),
            "image_build_image": IMAGE,
            "image_build_sigstore_private_key": KEY + ".private",
            "image_build_sigstore_passphrase": PASSPHRASE,
            "image_build_user_ids": {"core": 1000},
        }
    )
    (directory / "silverblue.yml").write_text(yaml.safe_dump(silverblue, sort_keys=False))


def converge(state_dir: Path, check: bool = False):
    done = Lab(state_dir / "inventory.yml").playbook(SITE, check=check, diff=check, timeout=1200)
    assert done.ok, done.explain()
    return done


def booted(state_dir: Path, host: str = HOST) -> dict:
    deployments = json.loads(on_host(state_dir, "rpm-ostree", "status", "--json", host=host).stdout)["deployments"]
    return next(d for d in deployments if d["booted"])


def drift(state_dir: Path, report_dir: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    done = immutable_hosts("drift", "-i", str(state_dir / "inventory.yml"), "--report-dir", str(report_dir))
    report = report_dir / "drift.json"
    assert report.exists(), f"rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done, json.loads(report.read_text())


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


def test_one_inventory_layering_then_image_mode(image_lab: Path, tmp_path: Path) -> None:
    for prefix, passphrase in ((KEY, PASSPHRASE), ("/etc/immutable-hosts/other", "other")):
        made = on_host(
            image_lab, "sh", "-c", "mkdir -p /etc/immutable-hosts && skopeo generate-sigstore-key --output-prefix %s "
            "--passphrase-file /dev/stdin" % prefix, stdin=passphrase,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr

    # Layering, as make demo converges the group: the signed Silverblue 42 image, three packages layered (one reboot).
    group_vars(image_lab, "layering")
    converge(image_lab)
    layered = {host: booted(image_lab, host) for host in HOSTS}
    for deployment in layered.values():
        assert deployment["container-image-reference"] == "ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42"
        assert sorted(deployment["requested-packages"]) == ["htop", "starship", "tmux"]

    # The group's image, from the same inventory: built, pushed, signed; then nothing to do, and a check agrees.
    first = build(image_lab)
    assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
    assert f"image {IMAGE}: built and pushed" in first.stdout
    assert "signed: yes (sigstore)" in first.stdout
    reference = digest_line(first.stdout)
    assert reference.startswith(REPOSITORY + "@sha256:")
    containerfile = on_host(image_lab, "cat", CONTEXT + "/Containerfile").stdout
    assert '["dnf", "-y", "install", "htop", "tmux", "starship"]' in containerfile
    assert 'RUN ["systemctl", "disable", "rpm-ostreed-automatic.timer"]' in containerfile.splitlines()  # all.yml's
    copr = on_host(image_lab, "cat", CONTEXT + "/tree/etc/yum.repos.d/_copr:copr.lab:lab:tools.repo")
    assert copr.returncode == 0 and "fedora-$releasever-$basearch" in copr.stdout, copr.stderr
    inspected = json.loads(on_host(image_lab, "skopeo", "inspect", "--no-tags", "docker://" + IMAGE).stdout)
    assert REPOSITORY + "@" + inspected["Digest"] == reference
    assert inspected["Labels"]["io.immutable-hosts.context"].startswith("sha256:")
    assert inspected["Labels"]["io.immutable-hosts.source"] == "group silverblue"
    assert inspected["Labels"]["io.immutable-hosts.packages"] == "htop,starship,tmux"

    second = build(image_lab)
    assert second.returncode == 0, f"{second.stdout}\n{second.stderr}"
    assert f"image {IMAGE}: up to date" in second.stdout and "written: no change" in second.stdout
    assert digest_line(second.stdout) == reference
    assert on_host(image_lab, "cat", CONTEXT + "/Containerfile").stdout == containerfile
    check = build(image_lab, "--check")
    assert check.returncode == 0, f"{check.stdout}\n{check.stderr}"
    assert "would change: nothing" in check.stdout and f"image {IMAGE}: up to date" in check.stdout

    # A policy that trusts another key refuses the image: the signature is checked, not merely present.
    trust(image_lab, "/etc/immutable-hosts/other.pub")
    refused = on_host(image_lab, "rpm-ostree", "rebase", "ostree-image-signed:docker://" + reference)
    assert refused.returncode != 0 and "signature" in (refused.stderr + refused.stdout).lower(), refused

    # Image mode: the hosts follow the image by digest; the requests the image provides go with the switch.
    group_vars(image_lab, "image")
    preview = converge(image_lab, check=True)
    assert all(preview.changed(host) for host in HOSTS)
    assert all(booted(image_lab, host)["checksum"] == layered[host]["checksum"] for host in HOSTS)  # nothing changed
    converge(image_lab)
    for host in HOSTS:
        now = booted(image_lab, host)
        assert now["container-image-reference"] == "ostree-image-signed:docker://" + reference
        assert now["container-image-reference-digest"] == reference.split("@", 1)[1]
        assert now["requested-packages"] == [] and now["packages"] == [], now
        pkglist = on_host(
            image_lab, "ostree", "show", "--repo=/ostree/repo", "--print-metadata-key=rpmostree.rpmdb.pkglist",
            now["checksum"], host=host,
        )  # fmt: skip
        assert all(f"'{name}'" in pkglist.stdout for name in ("htop", "tmux", "starship", "bash")), pkglist.stdout

    # What the image carries besides packages, in the deployed tree (its /etc as /usr/etc): the trust, so the image
    # verifies its own next update; the update policy; core's rootless unit where Quadlet finds it for UID 1000.
    def deployed(path: str) -> str:
        done = on_host(image_lab, "ostree", "cat", "--repo=/ostree/repo", booted(image_lab)["checksum"], path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    policy = json.loads(deployed("/usr/etc/containers/policy.json"))
    assert policy["default"] == [{"type": "reject"}]
    assert set(policy["transports"]["docker"]) == {"", "quay.io/fedora", REPOSITORY}
    fleet = policy["transports"]["docker"][REPOSITORY][0]
    assert fleet["type"] == "sigstoreSigned"
    assert deployed("/usr" + fleet["keyPath"]) == (image_lab / "keys" / "fleet.pub").read_text().strip() + "\n"
    assert "use-sigstore-attachments: true" in deployed(
        "/usr/etc/containers/registries.d/registry.lab-5000-fleet-silverblue.yaml"
    )
    assert "AutomaticUpdatePolicy=none" in deployed("/usr/etc/rpm-ostreed.conf").splitlines()
    assert "Image=localhost/lab/busybox:latest" in deployed("/usr/etc/containers/systemd/users/1000/heartbeat.container")
    again = converge(image_lab)
    assert not any(again.changed(host) for host in HOSTS), [t.name for t in again.changed_tasks()]

    # Drift in image mode: none; then a package layered by hand is drift, and what the image provides is not.
    done, report = drift(image_lab, tmp_path / "clean")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{json.dumps(report, indent=1)}"
    assert {name: host["status"] for name, host in report["hosts"].items()} == dict.fromkeys(HOSTS, "in_sync")
    by_hand = on_host(image_lab, "rpm-ostree", "install", "vim-enhanced")
    assert by_hand.returncode == 0, by_hand.stderr
    done, report = drift(image_lab, tmp_path / "drifted")
    assert done.returncode == 2, f"{done.stdout}\n{done.stderr}"
    assert report["hosts"]["image-2"]["status"] == "in_sync"
    changes = report["hosts"][HOST]["changes"]
    assert [change["resource"] for change in changes] == ["layered packages"], json.dumps(changes, indent=1)
    diff = changes[0]["diff"][0]
    assert diff["before"]["requested_packages"] == ["vim-enhanced"] and diff["after"]["requested_packages"] == []
