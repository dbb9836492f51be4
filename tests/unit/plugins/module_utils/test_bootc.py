"""bootc status: the example documents, as JSON, as canonical compact JSON and as YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _bootc as bootc

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def spellings(name: str) -> list:
    data = json.loads(text(name))
    return [
        text(name),
        json.dumps(data, sort_keys=True, separators=(",", ":")),
        yaml.safe_dump(data, default_flow_style=False, sort_keys=False),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["pretty-json", "canonical-json", "yaml"])
def test_container_host(index):
    status = bootc.parse_status(spellings("bootc-status-container-host.json")[index])
    assert status["is_bootc"] is True and status["type"] == "bootcHost"
    assert status["rollback_queued"] is False and status["boot_order"] == "default"
    booted, staged, rollback = status["booted"], status["staged"], status["rollback"]
    assert booted["image"]["image"]["sigverify"] == "signed"
    assert booted["image"]["image"]["canonical"] == "ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:41"
    assert booted["image"]["digest"] == "sha256:525a307176388da34e6b6f4f3fc1f589121a122d851b6ce7a36850ffafaf19b9"
    assert (booted["image"]["version"], booted["image"]["architecture"]) == ("41.20241112.0", "amd64")
    assert booted["image"]["timestamp"] == "2024-11-12T08:00:00Z"
    assert (booted["checksum"], booted["serial"], booted["stateroot"]) == (
        "5a6e2cbff81e83761b5c224de688f8059d720f99ba66c09476d96d745ac4a443",
        0,
        "fedora",
    )
    assert booted["store"] == "ostreeContainer" and booted["incompatible"] is False and booted["download_only"] is False
    assert staged["image"]["version"] == "41.20241117.0" and staged["checksum"].startswith("c5c8025e")
    assert rollback["image"] is None and rollback["incompatible"] is False
    assert status["spec_image"]["normalized"] == "quay.io/fedora/fedora-silverblue:41"
    assert status["other"] == []
    assert bootc.reboot_state(status) == {
        "reboot_required": True,
        "reboot_reasons": ["staged-update"],
        "staged_locked": False,
        "staged_locked_reasons": [],
    }


@pytest.mark.parametrize("index", [0, 1, 2], ids=["pretty-json", "canonical-json", "yaml"])
def test_incompatible_layered(index):
    status = bootc.parse_status(spellings("bootc-status-incompatible-layered.json")[index])
    assert status["booted"]["incompatible"] is True and status["booted"]["image"] is None
    assert status["spec_image"] is None and status["type"] is None and status["staged"] is None
    assert status["rollback"]["image"]["image"]["sigverify"] == "signed"
    assert bootc.reboot_state(status) == {
        "reboot_required": False,
        "reboot_reasons": [],
        "staged_locked": False,
        "staged_locked_reasons": [],
    }


def test_signature_variants():
    ref = bootc.image_reference_from_bootc
    assert ref({"image": "q.io/a/b:1", "transport": "registry"}).sigverify == "unverified"
    assert ref({"image": "q.io/a/b:1", "transport": "registry", "signature": "insecure"}).sigverify == "unverified"
    remote = ref({"image": "q.io/a/b:1", "transport": "registry", "signature": {"ostreeRemote": "fedora"}})
    assert (remote.sigverify, remote.remote) == ("remote", "fedora")
    assert ref({"image": "/srv/x", "transport": "oci"}).canonical == "ostree-unverified-image:oci:/srv/x"
    assert ref(None) is None


def test_rollback_queued_and_download_only():
    data = json.loads(text("bootc-status-container-host.json"))
    data["status"]["rollbackQueued"] = True
    data["status"]["staged"]["downloadOnly"] = True
    status = bootc.parse_status(data)
    state = bootc.reboot_state(status)
    # A plain reboot discards the download-only deployment, and the queued rollback boots.
    assert state["reboot_required"] is True and state["reboot_reasons"] == ["rollback-queued"]
    assert state["staged_locked"] is True and state["staged_locked_reasons"] == ["staged-update", "finalization-locked"]
    del data["status"]["rollbackQueued"]
    assert bootc.reboot_state(bootc.parse_status(data))["reboot_required"] is False


def test_not_booted_via_bootc():
    doc = {"apiVersion": "org.containers.bootc/v1", "kind": "BootcHost", "metadata": {"name": "host"}, "spec": {"image": None}}
    doc["status"] = {"booted": None, "staged": None, "rollback": None, "rollbackQueued": False, "type": None}
    status = bootc.parse_status(json.dumps(doc))
    assert status["is_bootc"] is False and status["booted"] is None


def test_yaml_reader_handles_serde_yaml_style():
    document = """apiVersion: org.containers.bootc/v1
kind: BootcHost
metadata:
  name: host
spec:
  image:
    image: quay.io/fedora/fedora-silverblue:41
    transport: registry
    signature: !ostreeRemote fedora
  bootOrder: default
status:
  staged: null
  booted:
    image:
      image:
        image: quay.io/fedora/fedora-silverblue:41
        transport: registry
      version: '41.20241112.0'
      timestamp: 2024-11-12T08:00:00Z
      imageDigest: sha256:525a307176388da34e6b6f4f3fc1f589121a122d851b6ce7a36850ffafaf19b9
    cachedUpdate: null
    incompatible: false
    pinned: false
    store: ostreeContainer
    ostree:
      checksum: 5a6e2cbff81e83761b5c224de688f8059d720f99ba66c09476d96d745ac4a443
      deploySerial: 0
  rollback: null
  otherDeployments:
  - image: null
    incompatible: true
    pinned: true
    ostree:
      checksum: 9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1
      deploySerial: 1
  rollbackQueued: false
  type: bootcHost
"""
    status = bootc.parse_status(document)
    assert status["booted"]["image"]["version"] == "41.20241112.0"
    assert status["booted"]["image"]["timestamp"] == "2024-11-12T08:00:00Z"
    assert status["other"][0]["pinned"] is True and status["other"][0]["serial"] == 1
    assert status["booted"]["image"]["image"]["sigverify"] == "unverified"
    assert status["spec_image"]["sigverify"] == "remote" and status["spec_image"]["remote"] == "fedora"


@pytest.mark.parametrize("document", ["", "{}", "kind: Other", "[1, 2]", "a: 'unterminated"])
def test_garbage_is_rejected(document):
    with pytest.raises(bootc.BootcParseError):
        bootc.parse_status(document)
