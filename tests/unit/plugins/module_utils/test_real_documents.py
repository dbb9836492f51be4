"""The parsers against documents real hosts and real tools printed (tests/unit/fixtures/real, sources in its README):
rpm-ostree of Fedora CoreOS, Silverblue, RHCOS and RHEL for Edge; ostree 2022.7, 2025.3 and 2026.4 captured from real
binaries; bootc's own fixtures.  Each test names what it proves that the contract's synthetic examples did not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _bootc as bootc
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _facts as facts
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real"
RPM_OSTREE = sorted((REAL / "rpm-ostree").glob("*/*.json"))
OSTREE_VERSIONS = ("2022.7", "2025.3", "2026.4")
STATES = ("booted-rollback", "two-stateroots", "two-stateroots-pinned", "staged", "unsigned-gpg-verify")


def capture(version: str, name: str) -> tuple:
    base = REAL / "ostree" / version / name
    rc = int((base.parent / (base.name + ".rc")).read_text())
    return rc, (base.parent / (base.name + ".txt")).read_text(), (base.parent / (base.name + ".stderr")).read_text()


# --- rpm-ostree ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", RPM_OSTREE, ids=lambda p: "%s/%s" % (p.parent.name, p.stem))
def test_every_real_rpm_ostree_document_parses_into_facts(path):
    status = rpm_ostree.parse_status(path.read_text())
    host_facts = facts.from_rpm_ostree(status, {}, {"policy": "none"}, "x86_64")
    assert host_facts["booted"] is not None and host_facts["booted"]["booted"] is True
    assert all(d["origin_parsed"] and d["origin_parsed"]["kind"] != "invalid" for d in status["deployments"])
    assert host_facts["merge"]["osname"] == host_facts["booted"]["osname"]


@pytest.mark.parametrize(
    ("name", "architecture"),
    [
        ("2021.1/status-silverblue-33-local-replacements-cosa-basearch.json", "x86_64"),  # coreos-assembler.basearch
        ("unknown/status-fcos-30.1-devel-basearch.json", "x86_64"),
        ("2024.9/status-fcos-41-container-custom-origin.json", "x86_64"),  # "architecture":"amd64" of the image config
        ("2025.11/status-fcos-43-container-image-signed.json", "x86_64"),
        ("unknown/status-rhel-edge-8-layered-insights-core-EDITED.json", "x86_64"),  # the ref rhel/8/x86_64/...
    ],
)
def test_the_architecture_comes_from_the_deployment_not_the_machine(name, architecture):
    """Before: platform.machine() of the module's process; a 32-bit or emulated userland reported the kernel's."""
    status = rpm_ostree.parse_status((REAL / "rpm-ostree" / name).read_text())
    assert rpm_ostree.pick(status, "booted")["architecture"] == architecture
    host_facts = facts.from_rpm_ostree(status, {}, {}, "i686")
    assert (host_facts["architecture"], host_facts["oci_architecture"]) == ("x86_64", "amd64")


def test_a_real_finalization_locked_staged_deployment_needs_no_reboot():
    """Fedora CoreOS 31 with zincati: the locked staged deployment is discarded by a plain reboot."""
    status = rpm_ostree.parse_status((REAL / "rpm-ostree/unknown/status-fcos-31-staged-finalization-locked.json").read_text())
    state = rpm_ostree.reboot_state(status)
    assert state["reboot_required"] is False and state["reboot_reasons"] == []
    assert state["staged_locked"] is True and "finalization-locked" in state["staged_locked_reasons"]


def test_old_documents_without_a_staged_key_are_not_staged():
    """Before rpm-ostree 2021.5 ``staged`` was written only when true."""
    status = rpm_ostree.parse_status((REAL / "rpm-ostree/unknown/status-fcos-30.1-devel-basearch.json").read_text())
    assert status["staged_index"] is None and not any(d["staged"] for d in status["deployments"])


# --- ostree admin status ------------------------------------------------------------------------------------------------


def roles(deployments: list) -> dict:
    found = ostree.roles_from_flags(deployments)
    return {role: found[role + "_index"] for role in ("booted", "pending", "staged", "rollback")}


@pytest.mark.parametrize("version", OSTREE_VERSIONS)
@pytest.mark.parametrize("state", STATES)
def test_text_and_json_of_the_same_host_agree(version, state):
    signed_text = state in ("staged", "unsigned-gpg-verify") and version != "2022.7"
    rc, text, _err = capture(version, "admin-status-%s%s" % (state, ".skip-signatures" if signed_text else ""))
    json_rc, document, json_err = capture(version, "admin-status-%s.json" % state)
    if version == "2022.7":
        assert json_rc == 1 and "Unknown option --json" in json_err
    if rc != 0:
        pytest.skip("ostree %s prints no complete text status here (see test_signature_failures)" % version)
    from_text = ostree.parse_admin_status(text)
    assert any(d["booted"] for d in from_text)
    if json_rc == 0:
        from_json = ostree.parse_admin_status_json(document)
        assert [(d["osname"], d["checksum"], d["serial"]) for d in from_json] == [
            (d["osname"], d["checksum"], d["serial"]) for d in from_text
        ]
        assert roles(from_json) == roles(from_text)


@pytest.mark.parametrize("version", OSTREE_VERSIONS)
def test_another_stateroot_that_boots_next_needs_a_reboot_on_both_backends(version):
    """Before: the rpm-ostree path said no reboot when deployments[0] belonged to another stateroot."""
    _rc, text, _err = capture(version, "admin-status-two-stateroots")
    deployments = ostree.parse_admin_status(text)
    plain = facts.from_ostree(deployments, {}, "x86_64")
    assert plain["pending"]["osname"] == "rhcos" and plain["booted"]["osname"] == "fedora-coreos"
    assert plain["reboot_required"] is True and plain["reboot_reasons"] == ["stateroot-changed"]
    assert plain["rollback"]["osname"] == "fedora-coreos"
    # The same host as rpm-ostree reports it: every deployment of every stateroot, in boot order.
    document = {
        "deployments": [
            {
                "id": "%s-%s.%d" % (d["osname"], d["checksum"], d["serial"]),
                "osname": d["osname"],
                "checksum": d["checksum"],
                "serial": d["serial"],
                "booted": d["booted"],
                "origin": d["origin"],
                "requested-packages": [],
                "packages": [],
            }
            for d in deployments
        ]
    }
    rpm = facts.from_rpm_ostree(rpm_ostree.parse_status(document), {}, {}, "x86_64")
    assert (rpm["reboot_required"], rpm["pending"]["checksum"], rpm["rollback"]["checksum"]) == (
        plain["reboot_required"],
        plain["pending"]["checksum"],
        plain["rollback"]["checksum"],
    )
    assert rpm["merge"]["osname"] == "fedora-coreos" and "stateroot-changed" in rpm["reboot_reasons"]


def test_json_before_ostree_2026_1_names_no_origin():
    """2025.3-2025.6 print neither refspec nor index: origins are unknown until the origin files are read
    (ostree_facts does; see test_ostree_facts)."""
    _rc, document, _err = capture("2025.3", "admin-status-booted-rollback.json")
    deployments = ostree.parse_admin_status_json(document)
    assert [d["index"] for d in deployments] == list(range(len(deployments)))
    assert all(d["origin"] is None and d["origin_kind"] == "unknown" for d in deployments)
    _rc, newer, _err = capture("2026.4", "admin-status-booted-rollback.json")
    assert all(d["origin"] == "labos:labos/x86_64/stable" for d in ostree.parse_admin_status_json(newer))


@pytest.mark.parametrize("version", OSTREE_VERSIONS)
def test_origin_files_ostree_wrote(version):
    for path in sorted((REAL / "ostree" / version).glob("*.origin")):
        origin = ostree.parse_origin_file(path.read_text())
        assert origin["origin_parsed"]["kind"] == "refspec"
        assert origin["pinned"] == ("pinned=true" in path.read_text())


@pytest.mark.parametrize("version", OSTREE_VERSIONS)
def test_signature_failures(version):
    """A commit that lost its signature: text status stops with exit 1 (ostree verifies signatures in status until
    --skip-signatures, 2024.1); --json and --skip-signatures print everything."""
    rc, text, err = capture(version, "admin-status-unsigned-gpg-verify")
    assert rc == 1 and "no signatures found" in err and len(ostree.parse_admin_status(text)) == 1
    skip_rc, skipped, skip_err = capture(version, "admin-status-unsigned-gpg-verify.skip-signatures")
    if version == "2022.7":
        assert skip_rc == 1 and "Unknown option --skip-signatures" in skip_err
    else:
        assert skip_rc == 0 and len(ostree.parse_admin_status(skipped)) == 3


def test_finalization_locked_staged_deployment_of_a_plain_ostree_host():
    _rc, document, _err = capture("2026.4", "admin-status-staged.json")
    deployments = ostree.parse_admin_status_json(document)
    host_facts = facts.from_ostree(deployments, {}, "x86_64")
    assert host_facts["staged"]["finalization_locked"] is True
    assert host_facts["reboot_required"] is False and host_facts["staged_locked"] is True


def test_ostree_without_any_flags_still_has_a_rollback():
    """ostree before 2017.7 printed no (rollback)/(pending) flags (rpm-ostree issue 447)."""
    text = (REAL / "ostree/unknown/admin-status-2016-no-flags-rpm-ostree-issue447.txt").read_text()
    host_facts = facts.from_ostree(ostree.parse_admin_status(text), {}, "x86_64")
    assert host_facts["booted"]["index"] == 0 and host_facts["rollback"]["index"] == 1
    assert host_facts["reboot_required"] is False and host_facts["architecture"] == "x86_64"


def test_the_complex_origin_file_of_rpm_ostrees_own_tests():
    """Before: replace=, initramfs keys were ignored and local packages kept their SHA-256 (rpm-ostree shows NEVRAs)."""
    origin = ostree.parse_origin_file((REAL / "rpm-ostree/unknown/origin-complex-upstream-unit-test.origin").read_text())
    assert origin["origin"] == "fedora:fedora/34/x86_64/silverblue"
    assert origin["requested_local_packages"] == ["foo-1.2-3.x86_64"]
    assert origin["requested_base_local_replacements"] == [
        "rpm-ostree-2021.1-2.fc33.x86_64",
        "rpm-ostree-devel-2021.1-2.fc33.x86_64",
        "rpm-ostree-libs-2021.1-2.fc33.x86_64",
    ]
    assert origin["requested_base_remote_replacements"] == [
        {"source": "repo=foobar", "packages": ["systemd"]},
        {"source": "repo=bazboo", "packages": ["kernel", "kernel-core", "kernel-modules"]},
    ]
    assert origin["regenerate_initramfs"] is True
    assert origin["initramfs_args"] == ["-I", "/etc/foobar.conf"] and origin["initramfs_etc"] == ["/etc/cmdline.d/foobar.conf"]
    assert origin["requested_base_removals"] == ["docker"] and origin["pinned"] is True


# --- bootc ----------------------------------------------------------------------------------------------------------------


def test_bootcs_cached_update_reaches_the_facts():
    """Before: bootc upgrade --check's cachedUpdate of the booted entry never reached facts.cached_update."""
    status = bootc.parse_status((REAL / "bootc/1.16.9/upstream-fixture-spec-booted-with-update.yaml").read_text())
    host_facts = facts.from_bootc(status, {}, {}, "x86_64")
    update = host_facts["cached_update"]
    assert update["version"] == "stream9.20240901.0" and update["digest"].startswith("sha256:a0a0")
    assert update["origin"] == "ostree-unverified-registry:quay.io/centos-bootc/centos-bootc:stream9"
    assert host_facts["architecture"] == "aarch64" and host_facts["oci_architecture"] == "arm64"


def test_bootcs_download_only_staged_deployment_needs_no_reboot():
    status = bootc.parse_status((REAL / "bootc/1.16.9/upstream-fixture-spec-staged-download-only.yaml").read_text())
    host_facts = facts.from_bootc(status, {}, {}, "x86_64")
    assert host_facts["staged"]["finalization_locked"] is True
    assert host_facts["reboot_required"] is False and host_facts["staged_locked"] is True


VERITY = "af81b5e18c0ff59aa955b3b0235cd3c15c26c490e9859e9553aa0567128cb7becd0b1ffa9f91942ec499aaf80323fc938f151c62529e5558746aa7e38d6d2433"


def composefs_host() -> dict:
    """A composefs-backend bootc status, assembled from bootc 1.16.9's host schema (BootEntryComposefs) around the
    booted image of bootc-dev/bink#90 and the verity digest of bootc#2010; bootc prints compact canonical JSON."""
    entry = {
        "cachedUpdate": None,
        "composefs": {
            "bootDigest": None,
            "bootType": "Bls",
            "bootloader": "grub",
            "missingVerityAllowed": True,
            "verity": VERITY,
        },
        "downloadOnly": False,
        "image": {
            "architecture": "amd64",
            "image": {"image": "ghcr.io/bootc-dev/bink/node:v1.35-fedora-44", "transport": "registry"},
            "imageDigest": "sha256:cd5d55566e9ca3a49ea588e9d44c54f4b48e1387646c273d1f56e8ad33b8ecac",
            "timestamp": "2026-06-29T12:00:31.727356920Z",
            "version": None,
        },
        "incompatible": False,
        "ostree": None,
        "pinned": False,
        "softRebootCapable": False,
        "store": None,
    }
    return {
        "apiVersion": "org.containers.bootc/v1",
        "kind": "BootcHost",
        "metadata": {"name": "host"},
        "spec": {"bootOrder": "default", "image": entry["image"]["image"]},
        "status": {"booted": entry, "rollback": None, "rollbackQueued": False, "staged": None, "type": "bootcHost"},
    }


def test_the_composefs_backend_gives_checksum_and_kernel_arguments():
    """Before: with "ostree": null no checksum, stateroot or kernel arguments were found."""
    text = json.dumps(composefs_host(), sort_keys=True, separators=(",", ":"))
    status = bootc.parse_status(text)
    bls = ostree.parse_bls_entry("title ALT Atomic\nversion 1\noptions root=UUID=1 rw composefs=?%s quiet\n" % VERITY)
    assert ostree.composefs_digest(bls["kargs"]) == VERITY
    host_facts = facts.from_bootc(status, {("composefs", VERITY): bls["kargs"]}, {}, "x86_64")
    booted = host_facts["booted"]
    assert booted["backend"] == "composefs" and booted["checksum"] == VERITY and booted["osname"] is None
    assert booted["composefs"]["boot_type"] == "Bls" and booted["composefs"]["missing_verity_allowed"] is True
    assert host_facts["kargs"] == ["root=UUID=1", "rw", "composefs=?" + VERITY, "quiet"]
    assert booted["origin"] == "ostree-unverified-registry:ghcr.io/bootc-dev/bink/node:v1.35-fedora-44"
