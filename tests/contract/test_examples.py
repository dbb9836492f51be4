"""Drive real sysroots into each situation of ../shared/reference/examples and compare key sets and JSON types."""

from __future__ import annotations

import shutil
import time

from conftest import Host
from shapes import assert_bootc_like, assert_status_like, load_example

from immutable_hosts.lab import ostree_content

# The container-image examples (rpm-ostree-status-container-origin.json, bootc-status-container-host.json) need images
# pulled through containers/image from a registry: they are checked on a lab host (tests/lab/test_registry.py).


def test_plain_silverblue(make_host) -> None:
    host: Host = make_host("silverblue")
    host.rpm_ostree("deploy", "version=41.20241020.0")
    host.reboot()
    host.rpm_ostree("upgrade")
    host.reboot()
    doc = host.status()
    assert_status_like(doc, load_example("rpm-ostree-status-plain-silverblue.json"))
    assert doc["deployments"][0]["booted"] and doc["deployments"][0]["version"] == "41.20241104.0"
    assert doc["deployments"][1]["pending-base-checksum"] == doc["deployments"][0]["checksum"]


def test_layered_staged_pinned(make_host, tmp_path) -> None:
    host: Host = make_host("silverblue")
    host.ostree("admin", "pin", f"--sysroot={host.root}", "0")
    rpm = ostree_content.make_local_rpm(tmp_path / "rpmfusion-free-release-41-1.noarch.rpm", "rpmfusion-free-release", "41", "1")
    host.rpm_ostree("install", "vim-enhanced", str(rpm))
    host.rpm_ostree("override", "remove", "firefox", "firefox-langpacks")
    host.reboot()
    ostree_content.publish(host.server, "fedora/41/x86_64/silverblue")
    host.rpm_ostree("upgrade")
    host.rpm_ostree("install", "htop")
    doc = host.status()
    example = load_example("rpm-ostree-status-layered-staged-pinned.json")
    assert_status_like(doc, example)
    staged, booted, pinned = doc["deployments"]
    assert staged["staged"] and booted["booted"] and pinned["pinned"]
    assert staged["packages"] == ["htop", "vim-enhanced"]
    assert staged["requested-local-packages"] == ["rpmfusion-free-release-41-1.noarch"]
    assert [r[1] for r in staged["base-removals"]] == ["firefox", "firefox-langpacks"]
    assert staged["layered-commit-meta"]["rpmostree.clientlayer"] is True
    origin = next(host.root.glob(f"ostree/deploy/fedora/deploy/{staged['checksum']}.0.origin")).read_text()
    assert "baserefspec=fedora:fedora/41/x86_64/silverblue" in origin
    assert "requested=htop;vim-enhanced;" in origin and "remove=firefox;firefox-langpacks;" in origin


def test_busy_update_driver(make_host) -> None:
    host: Host = make_host("bootc")
    driver = host.spawn("__sim-driver", "Zincati")
    busy = host.spawn("__sim-busy", "30", "rebase", "ostree-remote-image:fedora:docker://quay.io/x:stable")
    try:
        for _ in range(50):
            doc = host.status()
            if doc["transaction"] and doc["update-driver"]:
                break
            time.sleep(0.1)
        assert_status_like(doc, load_example("rpm-ostree-status-busy-update-driver.json"))
        assert doc["transaction"][0] == "Rebase"
        assert doc["update-driver"]["driver-name"] == "Zincati"
    finally:
        for proc in (busy, driver):
            proc.terminate()
            proc.wait(timeout=10)


def test_bootc_switch_reads_arguments_as_clap_does(make_host) -> None:
    """-h prints help and exits 0 without switching; after "--" an argument that starts with '-' is the target;
    an unknown option is refused with clap's exit code 2."""
    host: Host = make_host("bootc")
    before = host.bootc_status()["spec"]
    helped = host.run("bootc", "switch", "--transport", "oci", "-h")
    assert helped.returncode == 0 and "Usage: bootc switch" in helped.stdout and host.bootc_status()["spec"] == before
    refused = host.run("bootc", "switch", "--frobnicate", "quay.io/fedora/fedora-silverblue:41")
    assert refused.returncode == 2 and "unexpected argument '--frobnicate'" in refused.stderr
    assert host.bootc_status()["spec"] == before


def test_bootc_incompatible_layered(make_host) -> None:
    host: Host = make_host("bootc")
    host.rpm_ostree("install", "htop")
    host.reboot()
    doc = host.bootc_status()
    assert_bootc_like(doc, load_example("bootc-status-incompatible-layered.json"))
    assert doc["status"]["booted"]["incompatible"] is True
    res = host.run("bootc", "upgrade")
    assert res.returncode == 1 and "local rpm-ostree modifications" in res.stderr


def test_a_status_read_from_the_commit_cache_is_the_status_ostree_gives(make_host, tmp_path) -> None:
    """The simulator keeps what ``ostree show`` says of a commit (commits never change), as rpm-ostreed keeps it in
    memory; a status from that cache is the same document, byte for byte, as one read from ostree itself."""
    host: Host = make_host("silverblue")
    rpm = ostree_content.make_local_rpm(tmp_path / "x-1-1.noarch.rpm", "x", "1", "1")
    host.rpm_ostree("install", "vim-enhanced", str(rpm))
    host.rpm_ostree("override", "remove", "firefox")
    cache = host.root / "var/cache/rpm-ostree-sim/commits"
    shutil.rmtree(cache, ignore_errors=True)
    from_ostree = host.rpm_ostree("status", "--json").stdout
    assert len(list(cache.glob("*.json"))) >= 2
    assert host.rpm_ostree("status", "--json").stdout == from_ostree
