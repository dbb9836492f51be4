"""The lab registry and image trust: real OCI images (an index per tag), real sigstore signatures, TLS and htpasswd, the
rpm-ostree simulator pulling through the host's containers/image stack (policy.json, registries.d, auth.json), and
immutable.hosts.image_policy making a signed rebase work.

Host: silverblue-8 (other test files own the others). Every command is the real one (skopeo, the simulator's
``rpm-ostree``). The first tests write the trust by hand, as an administrator would, so they test the lab and the
simulator apart from the module; the last one installs it with the module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from snapshot import assert_unchanged, snapshot

# The contract's shape checks (tests/contract/shapes.py): its container-image examples are checked here, on a lab host,
# because their images are pulled through containers/image from the lab registry.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from shapes import assert_bootc_like, assert_status_like, load_example

from immutable_hosts.lab import ostree_content, registry
from immutable_hosts.lab.state import LabState

pytestmark = pytest.mark.lab

HOST = "silverblue-8"
SIGNED = "quay.io/fedora/fedora-silverblue:42"
TRUST = {
    "default": [{"type": "reject"}],
    "transports": {
        "docker": {
            "quay.io/fedora": [
                {
                    "type": "sigstoreSigned",
                    "keyPath": "/etc/pki/containers/fedora.pub",
                    "signedIdentity": {"type": "matchRepository"},
                }
            ],
            "quay.io/fedora-lab": [
                {
                    "type": "sigstoreSigned",
                    "keyPath": "/etc/pki/containers/fedora.pub",
                    "signedIdentity": {"type": "matchRepository"},
                }
            ],
            "registry.lab:5001/private": [
                {
                    "type": "sigstoreSigned",
                    "keyPath": "/etc/pki/containers/fedora.pub",
                    "signedIdentity": {"type": "matchRepository"},
                }
            ],
        },
        "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},
    },
}
ATTACHMENTS = "docker:\n  quay.io: {use-sigstore-attachments: true}\n  registry.lab:5001: {use-sigstore-attachments: true}\n"


def sh(lab_session, command: str, check: bool = True):
    done = lab_session.exec(HOST, "sh", "-c", command)
    if check:
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


def write(lab_session, path: str, text: str, mode: str = "0644") -> None:
    sh(lab_session, f"install -D -m {mode} /dev/stdin {path} <<'EOF'\n{text}\nEOF")


def trust(lab_session) -> None:
    key = (registry.public_keys(LabState(lab_session.state_dir))["fedora"]).read_text()
    write(lab_session, "/etc/pki/containers/fedora.pub", key.strip())
    write(lab_session, "/etc/containers/policy.json", json.dumps(TRUST, indent=2))
    write(lab_session, "/etc/containers/registries.d/lab.yaml", ATTACHMENTS)


def untrust(lab_session) -> None:
    sh(lab_session, "rm -f /etc/pki/containers/fedora.pub /etc/containers/registries.d/lab.yaml /etc/ostree/auth.json")
    write(lab_session, "/etc/containers/policy.json", json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))


def pull(lab_session, image: str, *args: str):
    command = f"skopeo copy --quiet --remove-signatures {' '.join(args)} docker://{image} oci:/tmp/pulled:t"
    return sh(lab_session, f"{command}; rc=$?; rm -rf /tmp/pulled; exit $rc", check=False)


@pytest.fixture
def host(lab_session, lab_hosts):
    lab_hosts(HOST)
    yield HOST
    untrust(lab_session)


def test_registry_serves_real_multi_arch_indexes_over_tls(lab_session, host) -> None:
    status = lab_session.lab.status()["registry"]
    assert status["running"], status
    catalogue = ostree_content.catalogue(LabState(lab_session.state_dir).server_dir)
    index = json.loads(sh(lab_session, f"skopeo inspect --raw docker://{SIGNED}").stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    inspected = json.loads(sh(lab_session, f"skopeo inspect docker://{SIGNED}").stdout)
    assert inspected["Digest"] == catalogue[SIGNED]["index-digest"]
    assert inspected["Labels"]["containers.bootc"] == "1" and inspected["Labels"]["ostree.bootable"] == "true"
    x86 = json.loads(sh(lab_session, "skopeo inspect --raw docker://quay.io/fedora-lab/silverblue-x86-only:42").stdout)
    assert [m["platform"]["architecture"] for m in x86["manifests"]] == ["amd64"]
    # The same registry by its lab name; plain HTTP is refused by the TLS port.
    assert sh(lab_session, "skopeo inspect --raw docker://registry.lab:5000/fedora/fedora-silverblue:42").stdout.strip()
    assert (
        "HTTP request to an HTTPS server"
        in sh(
            lab_session,
            "python3 -c \"import urllib.request as u\ntry: u.urlopen('http://registry.lab:5000/v2/')\nexcept Exception as e: print(e.read().decode())\"",
        ).stdout
    )


def test_signatures_and_auth_are_checked_by_containers_image(lab_session, host) -> None:
    trust(lab_session)
    assert pull(lab_session, SIGNED).returncode == 0
    unsigned = pull(lab_session, "quay.io/fedora-lab/unsigned:42")
    assert unsigned.returncode != 0 and "A signature was required, but no signature exists" in unsigned.stderr
    other = pull(lab_session, "quay.io/fedora-lab/other-key:42")
    assert other.returncode != 0 and "cryptographic signature verification failed" in other.stderr
    private = "registry.lab:5001/private/silverblue:42"
    anonymous = pull(lab_session, private)
    assert anonymous.returncode != 0 and "authentication required" in anonymous.stderr
    creds = registry.credentials(LabState(lab_session.state_dir))
    assert pull(lab_session, private, "--src-creds", f"{creds['username']}:{creds['password']}").returncode == 0


def test_simulator_rebase_verifies_through_the_policy(lab_session, host) -> None:
    access = lab_session.access(host)
    signed_ref = f"ostree-image-signed:docker://{SIGNED}"
    before = snapshot(access)
    refused = sh(lab_session, f"rpm-ostree rebase {signed_ref}", check=False)
    assert refused.returncode != 0
    assert "containers-policy.json specifies a default of `insecureAcceptAnything`; refusing usage" in refused.stderr
    assert_unchanged(before, snapshot(access))

    trust(lab_session)
    before = snapshot(access)
    for image, message in (
        ("quay.io/fedora-lab/unsigned:42", "remote error: A signature was required, but no signature exists"),
        ("quay.io/fedora-lab/other-key:42", "remote error: cryptographic signature verification failed"),
        ("registry.lab:5001/private/silverblue:42", "authentication required"),
    ):
        failed = sh(lab_session, f"rpm-ostree rebase ostree-image-signed:docker://{image}", check=False)
        assert failed.returncode != 0 and message in failed.stderr, (image, failed.stderr)
        assert "Failed to invoke skopeo proxy method OpenImage" in failed.stderr
    assert_unchanged(before, snapshot(access))

    creds = registry.credentials(LabState(lab_session.state_dir))
    token = __import__("base64").b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
    write(lab_session, "/etc/ostree/auth.json", json.dumps({"auths": {creds["registry"]: {"auth": token}}}), mode="0600")
    assert (
        sh(
            lab_session, "rpm-ostree rebase ostree-image-signed:docker://registry.lab:5001/private/silverblue:42", check=False
        ).returncode
        == 0
    )
    done = sh(lab_session, f"rpm-ostree rebase {signed_ref}")
    staged = json.loads(sh(lab_session, "rpm-ostree status --json").stdout)["deployments"][0]
    assert staged["staged"] and staged["container-image-reference"] == signed_ref, done.stdout
    catalogue = ostree_content.catalogue(LabState(lab_session.state_dir).server_dir)
    assert staged["container-image-reference-digest"] == catalogue[SIGNED]["index-digest"]
    sh(lab_session, "rpm-ostree cleanup -p")


def test_publish_pushes_and_signs_a_new_digest(lab_session, host) -> None:
    state = LabState(lab_session.state_dir)
    old = ostree_content.catalogue(state.server_dir)[SIGNED]["index-digest"]
    published = lab_session.lab.publish(SIGNED)
    assert published["index-digest"] != old
    inspected = json.loads(sh(lab_session, f"skopeo inspect docker://{SIGNED}").stdout)
    assert inspected["Digest"] == published["index-digest"]
    trust(lab_session)
    assert pull(lab_session, SIGNED).returncode == 0


def policy_play(key: str) -> str:
    entries = [
        ("the default refuses", {"type": "reject"}),
        ("docker pulls stay open", {"scope": "", "type": "insecureAcceptAnything"}),
        ("Fedora's images are signed", {"scope": "quay.io/fedora", "key": key}),
        ("the lab's are too", {"scope": "quay.io/fedora-lab", "key": key}),
    ]
    tasks = "".join(f"    - name: {name}\n      immutable.hosts.image_policy: {json.dumps(args)}\n" for name, args in entries)
    return f"- hosts: {HOST}\n  gather_facts: false\n  tasks:\n{tasks}"


def test_image_policy_module_then_a_signed_rebase(lab, lab_session, host) -> None:
    """The issue's path: a signed rebase fails until image_policy installs the lab key; then it succeeds, and an
    unsigned image or one signed with another key is refused with containers/image's own message."""
    key = registry.public_keys(LabState(lab_session.state_dir))["fedora"].read_text()
    access = lab_session.access(host)
    untrust(lab_session)
    files = "cat /etc/containers/policy.json; ls /etc/containers/registries.d /etc/pki/containers 2>&1"
    before, before_files = snapshot(access), sh(lab_session, files).stdout

    rebase = f"- hosts: {HOST}\n  gather_facts: false\n  tasks:\n    - name: rebase\n      immutable.hosts.rebase: {{image: {SIGNED}}}\n"
    refused = lab.playbook_text(rebase, hosts=[host])
    assert not refused.ok and "immutable.hosts.image_policy" in refused.task("rebase", host).result["msg"]

    checked = lab.playbook_text(policy_play(key), hosts=[host], check=True, diff=True)
    assert checked.ok, checked.explain()
    assert all(r.changed for r in checked.results if r.action == "immutable.hosts.image_policy")
    assert sh(lab_session, files).stdout == before_files
    assert_unchanged(before, snapshot(access))

    only_scope = lab.module("immutable.hosts.image_policy", {"scope": "quay.io/fedora", "key": key}, hosts=[host])
    assert only_scope.ok, only_scope.explain()
    lone_default = lab.playbook_text(rebase, hosts=[host])
    assert not lone_default.ok and "default is insecureAcceptAnything alone" in lone_default.task("rebase", host).result["msg"]
    assert_unchanged(before, snapshot(access))

    first = lab.playbook_text(policy_play(key), hosts=[host], diff=True)
    changed = [r.changed for r in first.results if r.action == "immutable.hosts.image_policy"]
    assert first.ok and changed == [True, True, False, True], first.explain()
    second = lab.playbook_text(policy_play(key), hosts=[host], diff=True)
    assert second.ok and not second.changed(), [(r.task, r.result.get("diff")) for r in second.changed_tasks()]
    assert "quay.io-fedora.yaml" in sh(lab_session, "ls /etc/containers/registries.d").stdout

    for image, message in (
        ("quay.io/fedora-lab/unsigned:42", "A signature was required, but no signature exists"),
        ("quay.io/fedora-lab/other-key:42", "cryptographic signature verification failed"),
    ):
        failed = lab.playbook_text(rebase.replace(SIGNED, image), hosts=[host])
        assert not failed.ok and message in failed.task("rebase", host).result["msg"], failed.explain()
    assert_unchanged(before, snapshot(access))

    done = lab.playbook_text(rebase, hosts=[host])
    assert done.ok, done.explain()
    result = done.task("rebase", host).result
    assert result["changed"] and result["reboot_required"]
    staged = json.loads(sh(lab_session, "rpm-ostree status --json").stdout)["deployments"][0]
    assert staged["staged"] and staged["container-image-reference"] == f"ostree-image-signed:docker://{SIGNED}"
    sh(lab_session, "rpm-ostree cleanup -p")
    for scope in ("quay.io/fedora", "quay.io/fedora-lab"):
        removed = lab.module("immutable.hosts.image_policy", {"scope": scope, "state": "absent"}, hosts=[host])
        assert removed.ok and removed.results[0].changed, removed.explain()


def test_registry_auth_module_lets_rpm_ostree_pull_a_private_image(lab, lab_session, host) -> None:
    trust(lab_session)
    private = "registry.lab:5001/private/silverblue:42"
    rebase = f"- hosts: {HOST}\n  gather_facts: false\n  tasks:\n    - name: rebase\n      immutable.hosts.rebase: {{image: '{private}'}}\n"
    refused = lab.playbook_text(rebase, hosts=[host])
    assert not refused.ok and "authentication required" in refused.task("rebase", host).result["msg"]

    creds = registry.credentials(LabState(lab_session.state_dir))
    args = {"registry": creds["registry"], "username": creds["username"], "password": creds["password"]}
    checked = lab.module("immutable.hosts.registry_auth", args, hosts=[host], check=True, diff=True)
    assert checked.ok and checked.results[0].changed, checked.explain()
    assert sh(lab_session, "test ! -e /etc/ostree/auth.json").returncode == 0
    first = lab.module("immutable.hosts.registry_auth", args, hosts=[host], diff=True)
    second = lab.module("immutable.hosts.registry_auth", args, hosts=[host], diff=True)
    assert first.ok and first.results[0].changed and second.ok and not second.results[0].changed, second.explain()
    for run in (checked, first, second):
        assert creds["password"] not in json.dumps([r.result for r in run.results])
    assert sh(lab_session, "stat -c %a /etc/ostree/auth.json").stdout.strip() == "600"

    done = lab.playbook_text(rebase, hosts=[host])
    assert done.ok and done.task("rebase", host).result["changed"], done.explain()
    sh(lab_session, "rpm-ostree cleanup -p")


def test_the_drift_report_names_trust_auth_and_initramfs(lab, lab_session, host, tmp_path) -> None:
    """A check run with the drift callback: each resource by its own name, the credentials' change without the secret."""
    untrust(lab_session)
    key = registry.public_keys(LabState(lab_session.state_dir))["fedora"].read_text()
    creds = registry.credentials(LabState(lab_session.state_dir))
    report = tmp_path / "drift.json"
    lab.extra_env = {
        "ANSIBLE_CALLBACKS_ENABLED": "lab_results,immutable.hosts.drift",
        "IMMUTABLE_HOSTS_DRIFT_REPORT": str(report),
    }
    entries = [
        ("immutable.hosts.image_policy", {"type": "reject"}),
        ("immutable.hosts.image_policy", {"scope": "quay.io/fedora", "key": key}),
        (
            "immutable.hosts.registry_auth",
            {"registry": creds["registry"], "username": creds["username"], "password": creds["password"]},
        ),
        ("immutable.hosts.initramfs", {"regenerate": True, "args": ["--add=tpm2-tss"]}),
    ]
    tasks = "".join(f"    - name: step {i}\n      {module}: {json.dumps(args)}\n" for i, (module, args) in enumerate(entries))
    run = lab.playbook_text(f"- hosts: {HOST}\n  gather_facts: false\n  tasks:\n{tasks}", hosts=[host], check=True, diff=True)
    assert run.ok, run.explain()
    text = report.read_text()
    changes = json.loads(text)["hosts"][host]["changes"]
    assert [c["resource"] for c in changes] == [
        "image_policy default", "image_policy quay.io/fedora", f"registry_auth {creds['registry']}", "initramfs"
    ]  # fmt: skip
    assert creds["password"] not in text and creds["password"] not in run.stdout


COPR_HUB = ostree_content.COPR_HUB
COPR_FILE = "/etc/yum.repos.d/_copr:copr.lab:lab:tools.repo"


def test_rpm_repo_enables_a_copr_project_from_the_hub(lab, lab_session, host) -> None:
    """COPR by owner/project: the file the lab's hub (https://copr.lab:8443, TLS with the lab CA) serves for the
    release of the host's next deployment, where dnf copr puts it; a project the hub does not have is a clear failure."""
    args = {"copr": "lab/tools", "copr_hub": COPR_HUB, "priority": 50}
    checked = lab.module("immutable.hosts.rpm_repo", args, hosts=[host], check=True, diff=True)
    assert checked.ok and checked.results[0].changed, checked.explain()
    assert sh(lab_session, f"test ! -e '{COPR_FILE}'", check=False).returncode == 0
    first = lab.module("immutable.hosts.rpm_repo", args, hosts=[host], diff=True)
    second = lab.module("immutable.hosts.rpm_repo", args, hosts=[host], diff=True)
    assert first.ok and first.results[0].changed and second.ok and not second.results[0].changed, second.explain()
    result = first.results[0].result
    release = json.loads(sh(lab_session, "rpm-ostree status --json").stdout)["deployments"][0]["version"].split(".")[0]
    machine = sh(lab_session, "uname -m").stdout.strip()
    assert result["path"] == COPR_FILE and result["copr"]["chroot"] == f"fedora-{release}-{machine}"
    text = sh(lab_session, f"cat '{COPR_FILE}'").stdout
    assert text == ostree_content.copr_repo_file("lab/tools").replace("enabled_metadata=1\n", "enabled_metadata=1\npriority=50\n")

    missing = lab.module("immutable.hosts.rpm_repo", {"copr": "lab/nothing", "copr_hub": COPR_HUB}, hosts=[host])
    assert not missing.ok and "has no fedora-" in missing.results[0].result["msg"], missing.explain()
    removed = lab.module("immutable.hosts.rpm_repo", {"copr": "lab/tools", "copr_hub": COPR_HUB, "state": "absent"}, hosts=[host])
    assert removed.ok and removed.results[0].changed and sh(lab_session, f"test ! -e '{COPR_FILE}'", check=False).returncode == 0


def os_image_play(key: str, creds: dict) -> str:
    """The os_image role with the whole trust-and-sources path: a signed image from the private namespace, its key,
    the credentials, a COPR project and a package from it."""
    variables = {
        "os_image_trust": [
            {"type": "reject"},
            {"scope": "", "type": "insecureAcceptAnything"},
            {"scope": "registry.lab:5001/private", "key": key},
        ],
        "os_image_registry_auth": [creds],
        "os_image_repos": [{"copr": "lab/tools", "copr_hub": COPR_HUB}],
        "os_image_image": "registry.lab:5001/private/silverblue:42",
        "os_image_packages": ["starship"],
        "os_image_packages_state": "present",
    }
    return (
        f"- hosts: {HOST}\n  gather_facts: false\n  roles:\n    - role: immutable.hosts.os_image\n"
        f"      vars: {json.dumps(variables)}\n"
    )


def test_os_image_installs_trust_credentials_and_a_copr_then_follows_a_signed_private_image(lab, lab_session, host) -> None:
    """One host_state run: the policy and key, the credentials and the COPR repository first, then the signed rebase
    to the private image (which needs all three) and the COPR package layered on it. A check first: it plans the
    rebase against the policy it would install and changes nothing; then the run; then a second run changes nothing."""
    untrust(lab_session)
    key = registry.public_keys(LabState(lab_session.state_dir))["fedora"].read_text()
    creds = registry.credentials(LabState(lab_session.state_dir))
    play = os_image_play(key, creds)
    access = lab_session.access(host)
    listed = "/etc/containers/registries.d /etc/pki/containers /etc/yum.repos.d /etc/ostree"
    files = f"cat /etc/containers/policy.json; ls {listed} 2>&1; true"
    before, before_files = snapshot(access), sh(lab_session, files).stdout
    task = "immutable.hosts.os_image : Image trust and sources, the booted image, layered packages, kernel arguments, "
    task += "initramfs and update policy"

    checked = lab.playbook_text(play, hosts=[host], check=True, diff=True)
    assert checked.ok, checked.explain()
    planned = checked.task(task, host).result
    assert planned["changed"] and planned["check_mode"], planned
    assert [r["resource"] for r in planned["resources"] if r["changed"]] == [
        "image_policy default",
        'image_policy ""',
        "image_policy registry.lab:5001/private",
        "registry_auth registry.lab:5001",
        "rpm_repo lab/tools",
        "rebase registry.lab:5001/private/silverblue:42",
        "rpm_ostree_packages",
    ]
    assert planned["reboot_reasons"] == ["origin-changed", "layering-changed"]
    assert sh(lab_session, files).stdout == before_files
    assert_unchanged(before, snapshot(access))
    assert creds["password"] not in json.dumps(planned) and creds["password"] not in checked.stdout

    first = lab.playbook_text(play, hosts=[host], diff=True)
    assert first.ok, first.explain()
    done = first.task(task, host).result
    assert [r["changed"] for r in done["resources"]] == [r["changed"] for r in planned["resources"]]
    staged = json.loads(sh(lab_session, "rpm-ostree status --json").stdout)["deployments"][0]
    assert staged["staged"] and staged["container-image-reference"] == (
        "ostree-image-signed:docker://registry.lab:5001/private/silverblue:42"
    )
    assert "starship" in staged["requested-packages"]
    second = lab.playbook_text(play, hosts=[host], diff=True)
    assert second.ok and not second.task(task, host).result["changed"], second.explain()

    sh(lab_session, "rpm-ostree cleanup -p")
    paths = [r.get("key_path") or "" for r in done["resources"]] + [r.get("registries_d") or "" for r in done["resources"]]
    sh(lab_session, "rm -f " + " ".join(f"'{p}'" for p in paths + [COPR_FILE] if p))


def test_the_contracts_container_examples_on_a_lab_host(lab, lab_session, host) -> None:
    """rpm-ostree-status-container-origin.json and bootc-status-container-host.json: a signed rebase, a real reboot, a
    newer digest published to the registry and ``bootc upgrade``. Last in this file: the host stays on the image."""
    trust(lab_session)
    signed_41 = "ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:41"
    sh(lab_session, f"rpm-ostree rebase {signed_41}")
    rebooted = lab.module("ansible.builtin.reboot", hosts=[host])
    assert rebooted.ok, rebooted.explain()
    doc = json.loads(sh(lab_session, "rpm-ostree status --json").stdout)
    assert_status_like(doc, load_example("rpm-ostree-status-container-origin.json"))
    assert doc["deployments"][0]["booted"] and doc["deployments"][0]["container-image-reference"] == signed_41

    lab_session.lab.publish("quay.io/fedora/fedora-silverblue:41")
    assert "Queued for next boot: quay.io/fedora/fedora-silverblue:41" in sh(lab_session, "bootc upgrade").stdout
    status = json.loads(sh(lab_session, "bootc status --format=json").stdout)
    assert_bootc_like(status, load_example("bootc-status-container-host.json"))
    assert status["spec"]["image"]["signature"] == "containerPolicy"
    assert status["status"]["rollback"]["image"] is None
    sh(lab_session, "rpm-ostree cleanup -p")
