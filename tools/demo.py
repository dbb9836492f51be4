"""`make demo`: boot three lab hosts, converge them, show no drift, drift them by hand, show the drift, converge again.

Steps (each printed as it starts, with its wall time):
  1. the lab (its Python API, what `immutable-hosts lab up` runs) boots one silverblue, one kinoite and one
     apple-silicon host;
  2. copy the demo's desired state (tools/demo/group_vars) next to the lab inventory, with the lab registry's
     public key (keys/fedora.pub), which the silverblue host's trust names;
  3. `ansible-playbook playbooks/site.yml`, including the reboot; then show the signed path on silverblue-1: the
     policy that trusts the key, and the deployment booted from ``ostree-image-signed:`` (the demo stops if not);
  4. `immutable-hosts drift`: no drift;
  5. drift by hand: install an extra Flatpak, layer a package with rpm-ostree, edit a Quadlet unit;
  6. `immutable-hosts drift` again: the drift is shown; then site.yml converges it away;
  7. image mode: `immutable-hosts image build` builds the silverblue group's image on silverblue-1 (Podman, FROM the
     signed Silverblue 42 image by digest), pushes it to the lab registry and signs it with a key made there; with
     `os_image_mode: image`, site.yml switches silverblue-1 to it by digest (one reboot); `immutable-hosts drift`: no
     drift;
  8. print where the HTML report is. The lab stays up; `immutable-hosts lab down` takes it down.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import yaml  # noqa: E402

from immutable_hosts.lab import ostree_content, registry  # noqa: E402
from immutable_hosts.lab.api import Lab  # noqa: E402
from immutable_hosts.lab.state import LabState  # noqa: E402

DESIRED = ROOT / "tools" / "demo" / "group_vars"
BUILD = ROOT / "build"
REPORTS = BUILD / "demo"
PROFILES = ("silverblue", "kinoite", "apple-silicon")
DRIFT_BY_HAND = [
    (
        "silverblue-1",
        "install an extra Flatpak",
        ["flatpak", "install", "-y", "--system", "--noninteractive", "flathub", "org.example.Chat"],
    ),
    ("kinoite-1", "layer a package by hand", ["rpm-ostree", "install", "vim-enhanced"]),
    (
        "apple-silicon-1",
        "edit a unit",
        [
            "sed",
            "-i",
            "s/^Description=.*/Description=edited by hand/",
            "/home/core/.config/containers/systemd/heartbeat.container",
        ],
    ),
]


def step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.monotonic()


def done(started: float) -> None:
    print(f"    ({time.monotonic() - started:.1f}s)", flush=True)


def run(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> int:
    print("$ " + " ".join(argv), flush=True)
    rc = subprocess.run(argv, env=env, cwd=ROOT).returncode
    if rc not in ok:
        raise SystemExit(f"demo: {argv[0]} exited {rc}")
    return rc


def tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def drift(inventory: Path, report_dir: Path, env: dict[str, str], expect: int) -> int:
    """`immutable-hosts drift`: exit 0 means no drift, 2 drift; anything but ``expect`` stops the demo."""
    return run([tool("immutable-hosts"), "drift", "-i", str(inventory), "--report-dir", str(report_dir)], env, ok=(expect,))


def signed_path(lab: Lab) -> None:
    """What silverblue-1 trusts and boots after the converge: the demo stops unless the booted deployment is the
    signed image, verified with the key its policy names."""
    host = "silverblue-1"
    policy = json.loads(lab.exec(host, ["cat", "/etc/containers/policy.json"], check=True).stdout)
    status = json.loads(lab.exec(host, ["rpm-ostree", "status", "--json"], check=True).stdout)
    booted = next(d for d in status["deployments"] if d["booted"])
    reference = booted.get("container-image-reference") or booted.get("origin")
    trusted = policy.get("transports", {}).get("docker", {}).get("quay.io/fedora")
    print(f"    {host}: default {json.dumps(policy['default'])}, quay.io/fedora {json.dumps(trusted)}")
    print(f"    {host}: booted {reference} (layered: {', '.join(booted.get('requested-packages', []))})")
    if not str(reference).startswith("ostree-image-signed:") or not trusted or trusted[0]["type"] != "sigstoreSigned":
        raise SystemExit(f"demo: {host} does not boot the signed image under the trusted key ({reference})")


FLEET_IMAGE = "registry.lab:5000/fleet/silverblue:42"
FLEET_KEY = "/etc/immutable-hosts/fleet"


def image_mode(lab: Lab, inventory: Path, env: dict[str, str]) -> None:
    """The silverblue group in image mode: a signing key made on silverblue-1 (its build host), what image mode adds
    to the group's variables, the build, and the converge that switches the host."""
    host = "silverblue-1"
    keys = inventory.parent / "keys"
    secret = keys / "fleet.passphrase"  # the demo's own, kept for a second run; a real one lives in Ansible Vault
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(18))
        secret.chmod(0o600)
    passphrase = secret.read_text()
    lab.exec(host, ["mkdir", "-p", "/etc/immutable-hosts"], check=True)
    lab.exec(host, ["sh", "-c", f'test -e {FLEET_KEY}.pub || printf "%s\\n" "$1" | skopeo generate-sigstore-key '
             f"--output-prefix {FLEET_KEY} --passphrase-file /dev/stdin", "sh", passphrase], check=True)  # fmt: skip
    (keys / "fleet.pub").write_text(lab.exec(host, ["cat", FLEET_KEY + ".pub"], check=True).stdout)
    path = inventory.parent / "group_vars" / "silverblue.yml"
    variables = yaml.safe_load(path.read_text())
    base = ostree_content.catalogue(LabState(lab.state_dir).server_dir)["quay.io/fedora/fedora-silverblue:42"]
    variables["os_image_trust"].append(
        {"scope": FLEET_IMAGE.rsplit(":", 1)[0], "key": "{{ lookup('ansible.builtin.file', inventory_dir ~ '/keys/fleet.pub') }}"}
    )
    variables.update(
        {
            "os_image_mode": "image",
            "image_build_host": host,
            "image_build_path": "/var/lib/immutable-hosts/images/silverblue",
            "image_build_base_image": "quay.io/fedora/fedora-silverblue@" + base["index-digest"],
            "image_build_image": FLEET_IMAGE,
            "image_build_sigstore_private_key": FLEET_KEY + ".private",
            "image_build_sigstore_passphrase": passphrase,
        }
    )
    path.write_text(yaml.safe_dump(variables, sort_keys=False))
    print(f"    {path}: os_image_mode: image, image_build_image: {FLEET_IMAGE}")
    run([tool("immutable-hosts"), "image", "build", "-i", str(inventory), "--group", "silverblue"], env)
    run([tool("ansible-playbook"), "-i", str(inventory), "playbooks/site.yml", "--limit", "silverblue"], env)
    status = json.loads(lab.exec(host, ["rpm-ostree", "status", "--json"], check=True).stdout)
    booted = next(d for d in status["deployments"] if d["booted"])
    print(f"    {host}: booted {booted.get('container-image-reference')} (layered: {booted.get('requested-packages')})")


def main() -> int:
    total = time.monotonic()
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(BUILD), "ANSIBLE_FORKS": "10", "ANSIBLE_PIPELINING": "1"}
    lab = Lab(progress=lambda title: (print(f"    {title}", flush=True), lambda _message: None)[1])

    started = step("1. boot the lab: one silverblue, one kinoite and one apple-silicon host")
    for profile in PROFILES:
        print(f"$ immutable-hosts lab up --profile {profile} --hosts 1", flush=True)
        lab.up(hosts=1, profile=profile)
    inventory = lab.inventory
    done(started)

    started = step("2. the desired state: group_vars per profile next to the lab inventory")
    shutil.copytree(DESIRED, inventory.parent / "group_vars", dirs_exist_ok=True)
    keys = inventory.parent / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copyfile(registry.public_keys(LabState(lab.state_dir))["fedora"], keys / "fedora.pub")
    print(f"    {keys / 'fedora.pub'} (the lab registry's cosign public key)")
    run([sys.executable, str(ROOT / "tools" / "collection_tree.py"), str(BUILD)], env)
    for path in sorted((inventory.parent / "group_vars").glob("*.yml")):
        print(f"    {path}")
    done(started)

    started = step("3. converge: playbooks/site.yml (rebase, packages, kargs, one reboot, Flatpaks, rootless Podman)")
    run([tool("ansible-playbook"), "-i", str(inventory), "playbooks/site.yml"], env)
    signed_path(lab)
    done(started)

    started = step("4. drift check on the converged fleet")
    drift(inventory, REPORTS / "converged", env, expect=0)
    print("    no drift")
    done(started)

    started = step("5. drift by hand")
    for host, what, argv in DRIFT_BY_HAND:
        print(f"    {host}: {what}")
        print("$ immutable-hosts lab exec %s -- %s" % (host, " ".join(argv)), flush=True)
        lab.exec(host, argv, capture=False, check=True)
    done(started)

    started = step("6. drift check again, then converge")
    drift(inventory, REPORTS / "drifted", env, expect=2)
    print("    drift found: the report names each host and resource")
    run([tool("ansible-playbook"), "-i", str(inventory), "playbooks/site.yml"], env)
    done(started)

    started = step("7. image mode: build, push and sign the silverblue group's image; switch silverblue-1 by digest")
    image_mode(lab, inventory, env)
    drift(inventory, REPORTS / "image-mode", env, expect=0)
    print("    no drift: the image provides htop, tmux and starship; nothing is layered on silverblue-1")
    done(started)

    print(f"\n=== done in {time.monotonic() - total:.0f}s")
    print(f"HTML report of the drift: {REPORTS / 'drifted' / 'drift.html'}")
    print("The lab is still up. With the venv active (. .venv/bin/activate), from the checkout:")
    print('  ansible-playbook -i "$(immutable-hosts lab inventory)" playbooks/site.yml')
    print('  immutable-hosts drift -i "$(immutable-hosts lab inventory)"')
    print("Take it down with: immutable-hosts lab down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
