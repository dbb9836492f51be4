"""`immutable-hosts status`: the ssh settings of inventory hosts, host keys, the script's framing, the state read from
recorded outputs (a lab capture and the collection's golden documents) with the collection's own parsers, the report
(table, JSON, HTML) and the exit codes. Against real hosts: tests/lab/test_status.py."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import paramiko
import pytest
from rich.console import Console

from immutable_hosts import cli, module_utils, remote, status

DATA = Path(__file__).resolve().parent / "data" / "status"
FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"
MARKER = "0123456789abcdef01234567"
DEFAULTS = remote.Defaults(user="admin")


def target(hostvars: dict, defaults: remote.Defaults = DEFAULTS) -> tuple[remote.Target, list[str]]:
    return remote.target_of("web-1", hostvars, defaults)


# --- ssh arguments -----------------------------------------------------------------------------------------------------


def test_ssh_args_in_every_spelling_first_value_wins():
    options = remote.parse_ssh_args(
        "-o Port=2200 -oUser=deploy -o 'IdentityFile ~/.ssh/a' -i /keys/b -p 2300 -o port=2400 "
        "-o UserKnownHostsFile='/etc/kh /tmp/kh2' -o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes "
        "-o ConnectTimeout=7 -l other"
    )
    assert options.port == 2200
    assert options.user == "deploy"
    assert options.identity_files == ["~/.ssh/a", "/keys/b"]
    assert options.user_known_hosts == ["/etc/kh", "/tmp/kh2"]
    assert options.strict_host_key_checking == "accept-new"
    assert options.identities_only is True
    assert options.connect_timeout == 7.0
    assert options.ignored == []


def test_ssh_args_that_do_not_apply_to_one_direct_connection_are_named():
    options = remote.parse_ssh_args("-C -vvv -o ControlMaster=auto -o ControlPersist=60s -J bastion -F /dev/null -q")
    assert options.ignored == ["-C", "-v", "-v", "-v", "ControlMaster", "ControlPersist", "-J", "-F", "-q"]
    assert options.port is None and options.identity_files == []


@pytest.mark.parametrize(
    ("text", "message"),
    [("-o", "lacks its argument"), ("-o 'Port=22", "cannot split"), ("-p http", "not a number"), ("-p 70000", "out of range")],
)
def test_ssh_args_that_cannot_be_read_refuse_the_host(text, message):
    with pytest.raises(remote.TargetError, match=message):
        remote.parse_ssh_args(text)


def test_inventory_variables_come_before_the_hosts_ssh_arguments_as_ansible_passes_them():
    found, ignored = target(
        {
            "ansible_host": "10.0.0.5",
            "ansible_ssh_host": "10.0.0.6",  # of two names for one setting, the later one wins (ansible-core)
            "ansible_port": 2222,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": "/keys/lab",
            "ansible_ssh_common_args": "-o Port=22 -o User=nobody -i /keys/extra -o UserKnownHostsFile=/lab/kh -C",
        }
    )
    assert (found.address, found.port, found.user) == ("10.0.0.6", 2222, "root")
    assert found.key_files == ("/keys/lab", "/keys/extra")
    assert found.user_known_hosts == ("/lab/kh",)
    assert found.known_hosts_name == "[10.0.0.6]:2222"
    assert found.accept_new_host_keys is False
    assert ignored == ["-C"]


def test_defaults_where_the_inventory_is_silent():
    found, _ = target({}, remote.Defaults(user="ops", private_key="/keys/ops", timeout=3))
    assert (found.address, found.port, found.user, found.key_files) == ("web-1", 22, "ops", ("/keys/ops",))
    assert found.user_known_hosts == tuple(os.path.expanduser(p) for p in ("~/.ssh/known_hosts", "~/.ssh/known_hosts2"))
    assert found.connect_timeout == 3
    assert found.known_hosts_name == "web-1"
    # the common args' user and port apply when Ansible passes none itself
    found, _ = target({"ansible_ssh_extra_args": "-l deploy -p 2022"}, remote.Defaults())
    assert (found.user, found.port) == ("deploy", 2022)


@pytest.mark.parametrize(
    ("hostvars", "accept"),
    [
        ({}, False),
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=yes"}, False),
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new"}, True),
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}, True),
        ({"ansible_host_key_checking": False, "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes"}, True),
        ({"ansible_ssh_host_key_checking": "False"}, True),
    ],
)
def test_new_host_keys_are_accepted_only_where_the_inventory_says_so(hostvars, accept):
    assert target(hostvars)[0].accept_new_host_keys is accept
    assert target(hostvars, remote.Defaults(accept_new_host_keys=True))[0].accept_new_host_keys is True


@pytest.mark.parametrize(
    ("hostvars", "message"),
    [
        ({"ansible_host": "{{ lookup('pipe', 'id') }}"}, "ansible_host is a Jinja template"),
        ({"ansible_port": "{{ 22 }}"}, "ansible_port is a Jinja template"),
        ({"ansible_ssh_common_args": "{% if x %}-p 2{% endif %}"}, "ansible_ssh_common_args is a Jinja template"),
        ({"ansible_user": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n6162"}}, "vault-encrypted"),
        ({"ansible_host": {"__ansible_unsafe": "{{ x }}"}}, "Jinja template"),
        ({"ansible_host": ["a", "b"]}, "not a single value"),
        ({"ansible_connection": "local"}, "connects over SSH only"),
        ({"ansible_host": "-oProxyCommand=x"}, "not a host name"),
    ],
)
def test_inventory_values_are_data_never_templates(hostvars, message):
    with pytest.raises(remote.TargetError, match=message):
        target(hostvars)


def test_an_unsafe_inventory_value_is_used_as_it_is():
    assert target({"ansible_host": {"__ansible_unsafe": "10.1.2.3"}})[0].address == "10.1.2.3"


# --- host keys ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, paramiko.PKey]:
    return {name: paramiko.ECDSAKey.generate() for name in ("host", "other", "third")}


def key_line(names: str, key: paramiko.PKey) -> str:
    return f"{names} {key.get_name()} {key.get_base64()}\n"


def lab_target(known_hosts: Path, accept: bool = False, port: int = 22) -> remote.Target:
    return remote.Target(
        name="web-1",
        address="10.0.0.5",
        port=port,
        user="root",
        key_files=(),
        identities_only=True,
        user_known_hosts=(str(known_hosts),),
        global_known_hosts=(),
        accept_new_host_keys=accept,
        connect_timeout=5,
    )


def test_known_hosts_are_read_as_ssh_reads_them(tmp_path, keys):
    hashed = paramiko.HostKeys.hash_host("10.0.0.5")
    text = (
        "garbage line\n"
        + "10.0.0.9 ssh-ed25519 AAAAnot-base64!!\n"
        + key_line(hashed, keys["host"])
        + key_line("[10.0.0.5]:2222", keys["other"])
        + "@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC0Rdr0lNpBl/N7/StfbEIrnvGxaMwekLJ3+eA0CsT9p\n"
        + "@revoked "
        + key_line("10.0.0.5", keys["third"])
    )
    (tmp_path / "kh").write_text(text)
    store = remote.KnownHosts()
    known, revoked = store.lookup(lab_target(tmp_path / "kh"))
    assert {k: v.asbytes() for k, v in known.items()} == {keys["host"].get_name(): keys["host"].asbytes()}
    assert [key.asbytes() for key in revoked] == [keys["third"].asbytes()]
    known, _ = store.lookup(lab_target(tmp_path / "kh", port=2222))
    assert [v.asbytes() for v in known.values()] == [keys["other"].asbytes()]


def test_host_key_checks(tmp_path, keys):
    path = tmp_path / "kh"
    path.write_text(key_line("10.0.0.5", keys["host"]))
    store = remote.KnownHosts()
    strict = lab_target(path)
    known, revoked = store.lookup(strict)
    assert remote.check_host_key(strict, keys["host"], known, revoked, store) is None
    with pytest.raises(remote.ConnectError, match="host key CHANGED") as changed:
        remote.check_host_key(strict, keys["other"], known, revoked, store)
    assert changed.value.kind == "host-key"
    with pytest.raises(remote.ConnectError, match="revoked"):
        remote.check_host_key(strict, keys["host"], known, [keys["host"]], store)
    # a known host offering a key type it has no entry for is refused, even when new keys are accepted
    ed25519_line = "10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC0Rdr0lNpBl/N7/StfbEIrnvGxaMwekLJ3+eA0CsT9p\n"
    other_type = remote.KnownHosts.parse(ed25519_line)[0].lookup("10.0.0.5")
    with pytest.raises(remote.ConnectError, match="has only ssh-ed25519"):
        remote.check_host_key(lab_target(path, accept=True), keys["host"], other_type, [], store)


def test_an_unknown_host_key_is_refused_unless_told_and_then_recorded(tmp_path, keys):
    path = tmp_path / "ssh" / "known_hosts"
    store = remote.KnownHosts()
    with pytest.raises(remote.ConnectError, match=r"unknown host key .* --accept-new-host-keys"):
        remote.check_host_key(lab_target(path), keys["host"], {}, [], store)
    assert not path.exists()
    # accepted: a new file (the user's only) and its directory are made
    accepting = lab_target(path, accept=True, port=2222)
    assert remote.check_host_key(accepting, keys["host"], {}, [], store) == str(path)
    assert path.read_text() == f"[10.0.0.5]:2222 {keys['host'].get_name()} {keys['host'].get_base64()}\n"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    known, _ = remote.KnownHosts().lookup(accepting)
    assert [key.asbytes() for key in known.values()] == [keys["host"].asbytes()]
    # appended to a file that does not end with a newline: the line stays a line of its own
    other = tmp_path / "kh2"
    other.write_text(key_line("10.9.9.9", keys["other"]).rstrip("\n"))
    assert remote.check_host_key(lab_target(other, accept=True), keys["host"], {}, [], store) == str(other)
    assert other.read_text().splitlines()[1] == key_line("10.0.0.5", keys["host"]).rstrip("\n")


def test_an_unreachable_host_is_a_result_not_an_exception():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    found = remote.run_all([remote.Target("gone", "127.0.0.1", port, "root", (), True, (), (), False, 2)], "true", b"", 5, 5)
    assert found["gone"].kind == "unreachable"
    assert f"port {port}" in found["gone"].error and found["gone"].stdout == b""


# --- the script and its framing ----------------------------------------------------------------------------------------


def test_parts_are_framed_whatever_their_output_ends_with():
    stdout = (
        f"{MARKER} begin one\nabc\n\n{MARKER} end 0\n"
        f"{MARKER} begin two\nno newline\n{MARKER} end 3\n"
        f"{MARKER} begin empty\n\n{MARKER} end 0\n"
        f"{MARKER} begin file:/a b\nx\nffff begin forged\n\n{MARKER} end 0\n"
    )
    stderr = f"{MARKER} begin two\nboom\n\n{MARKER} end 3\n"
    parts = status.parse_parts(stdout, stderr, MARKER)
    assert parts == {
        "one": {"out": "abc\n", "err": "", "rc": 0},
        "two": {"out": "no newline", "err": "boom\n", "rc": 3},
        "empty": {"out": "", "err": "", "rc": 0},
        "file:/a b": {"out": "x\nffff begin forged\n", "err": "", "rc": 0},
    }


def test_the_script_asks_flatpak_for_the_columns_the_collection_parses():
    installation = module_utils.load("flatpak._installation")
    apps = module_utils.load("flatpak._apps")
    assert installation.columns_arg(apps.LIST_COLUMNS) == status.FLATPAK_COLUMNS_ARG
    assert status.FLATPAK_COLUMNS_ARG in status.SCRIPT


def test_the_paths_the_controller_looks_for_are_the_ones_the_script_lists():
    for path in (status.RPM_OSTREE_TIMER, status.BOOTC_TIMER, "/run/ostree-booted", "/run/ostree/staged-deployment"):
        assert path in status.SCRIPT


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_no_part_of_the_script_reads_its_stdin(tmp_path, shell):
    """sh reads the script from stdin, and bash (Fedora's sh) reads a pipe a byte at a time, leaving the rest to the
    commands it starts: a part that read stdin would eat the rest of the script."""
    if not shutil.which(shell):
        pytest.skip(f"no {shell} here")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uname").write_text("#!/bin/sh\ncat >/dev/null\necho x86_64\n")  # a uname that reads all of stdin
    (fake / "uname").chmod(0o755)
    env = {"PATH": f"{fake}:{os.defpath}"}
    done = subprocess.run([shell, "-s", MARKER], input=status.SCRIPT, capture_output=True, text=True, env=env)
    parts = status.parse_parts(done.stdout, done.stderr, MARKER)
    assert parts["machine"]["out"] == "x86_64\n" and "tools" in parts and "present" in parts


def test_the_remote_command_carries_no_host_data():
    assert status.remote_command(MARKER, False) == f"env LC_ALL=C LANG=C sh -s {MARKER}"
    assert status.remote_command(MARKER, True) == f"sudo -n -- env LC_ALL=C LANG=C sh -s {MARKER}"


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed (make deps)")
def test_the_script_is_posix_sh():
    done = subprocess.run(["shellcheck", "--shell=sh", "-"], input=status.SCRIPT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_script_runs_here_and_reads_a_host_without_ostree():
    """This machine is no OSTree host: the script still frames every part, and the report says so."""
    done = subprocess.run(["sh", "-s", MARKER], input=status.SCRIPT, capture_output=True, text=True, env={"PATH": os.defpath})
    assert done.returncode == 0, done.stderr
    parts = status.parse_parts(done.stdout, done.stderr, MARKER)
    assert parts["machine"]["out"].strip() == os.uname().machine
    report = status.report_from_parts(status.empty_report(None), parts, as_root=os.geteuid() == 0)
    assert (report["status"], report["backend"], report["booted"], report["reboot_required"]) == ("ok", "none", None, False)
    if shutil.which("flatpak"):
        assert set(report["flatpaks"]) == {"apps", "runtimes"}


# --- state from recorded output ----------------------------------------------------------------------------------------


def recorded(name: str, user: str = "root") -> remote.Result:
    return remote.Result(
        remote.Target("silverblue-1", "10.213.0.2", 22, user, (), True, (), (), False, 10),
        stdout=(DATA / f"{name}.stdout").read_bytes(),
        stderr=(DATA / f"{name}.stderr").read_bytes(),
        rc=0,
        timings={"connect": 0.01},
    )


def test_a_lab_host_with_a_staged_deployment():
    report = status.host_report(recorded("silverblue-staged"), MARKER, as_root=True)
    assert report["status"] == "ok" and report["error"] is None
    assert (report["backend"], report["architecture"]) == ("rpm-ostree", "x86_64")
    assert report["booted"] == {
        "origin": "fedora:fedora/41/x86_64/silverblue",
        "kind": "ref",
        "digest": None,
        "checksum": "a194fee69ffbcf85e6cc56ec3184082b1a77c546c0127009f78684a23be17967",
        "version": "41.20241104.0",
        "timestamp": 1730707260,
        "layered_packages": 0,
        "pinned": False,
    }
    assert report["staged"]["checksum"].startswith("2640570274f3") and report["staged"]["layered_packages"] == 1
    assert report["pending"] == report["staged"]
    assert report["reboot_required"] is True
    assert report["reboot_reasons"] == ["staged-update", "layering-changed"]
    assert report["transaction"] is None and report["layered_packages"] == 0
    assert report["flatpaks"] == {"apps": 1, "runtimes": 1}
    # web.container and data.volume; users/all.container for every user; core's a.container (not its drop-in)
    assert report["quadlets"] == {"system": 2, "for_users": 1, "users": {"core": 1}}
    assert report["warnings"] == [] and report["timings"] == {"connect": 0.01}


def test_a_read_as_another_user_says_what_may_be_missing():
    report = status.host_report(recorded("silverblue-staged", user="core"), MARKER, as_root=False)
    assert report["status"] == "ok"
    assert report["warnings"] == ["read as core, not root: other users' Quadlet units may be missing (--become)"]


def parts_of(**outputs) -> dict:
    parts = {
        "machine": {"out": "x86_64\n", "err": "", "rc": 0},
        "present": {"out": "/run/ostree-booted\n", "err": "", "rc": 0},
    }
    for name, value in outputs.items():
        parts[name.replace("_", "-")] = value if isinstance(value, dict) else {"out": value, "err": "", "rc": 0}
    return parts


def test_rpm_ostree_busy_with_an_image_origin():
    document = (FIXTURES / "rpm-ostree-status-busy-update-driver.json").read_text()
    report = status.report_from_parts(
        status.empty_report(None), parts_of(tools="rpm-ostree\nostree\n", rpm_ostree=document), as_root=True
    )
    assert report["transaction"] == {
        "method": "Rebase",
        "sender": ":1.87",
        "object_path": "/org/projectatomic/rpmostree1/fedora_coreos",
    }
    assert report["booted"]["kind"] == "image"
    assert report["booted"]["digest"] == "sha256:0e927c7a529ebb1775dd7da0ffee649e830ebf70f6a9df3f6dc0e4d4106664a6"
    assert status.deployment_cell(report["booted"]).startswith("quay.io/fedora/fedora-coreos:stable ")
    assert report["flatpaks"] is None and report["quadlets"] == {"system": 0, "for_users": 0, "users": {}}


def test_rpm_ostree_staged_layered_pinned():
    document = (FIXTURES / "rpm-ostree-status-layered-staged-pinned.json").read_text()
    report = status.report_from_parts(status.empty_report(None), parts_of(tools="rpm-ostree\n", rpm_ostree=document), True)
    assert report["layered_packages"] == 1 and report["staged"]["layered_packages"] == 2
    assert report["reboot_required"] is True and "staged-update" in report["reboot_reasons"]
    assert status.layered_cell(report) == "1 -> 2"


def test_bootc_alone():
    document = (FIXTURES / "bootc-status-container-host.json").read_text()
    report = status.report_from_parts(status.empty_report(None), parts_of(tools="bootc\nostree\n", bootc=document), True)
    assert report["backend"] == "bootc"
    assert report["booted"]["digest"] == "sha256:525a307176388da34e6b6f4f3fc1f589121a122d851b6ce7a36850ffafaf19b9"
    assert report["booted"]["layered_packages"] is None and report["layered_packages"] is None
    assert report["staged"] is not None and report["reboot_reasons"][0] == "staged-update"


def test_plain_ostree_older_than_its_json():
    real = FIXTURES / "real" / "ostree" / "2022.7"
    parts = parts_of(
        tools="ostree\n",
        ostree_json={"out": "", "err": (real / "admin-status-booted-rollback.json.stderr").read_text(), "rc": 1},
        ostree_skip_signatures={"out": "", "err": "error: Unknown option --skip-signatures\n", "rc": 1},
        ostree_text=(real / "admin-status-booted-rollback.txt").read_text(),
    )
    report = status.report_from_parts(status.empty_report(None), parts, True)
    assert report["backend"] == "ostree"
    assert report["booted"] is not None and report["booted"]["kind"] == "ref"


def test_a_failing_status_command_is_a_failed_host_with_its_message():
    parts = parts_of(tools="rpm-ostree\n", rpm_ostree={"out": "", "err": "error: Timeout was reached\n", "rc": 1})
    with pytest.raises(status.ReadError, match="rpm-ostree status --json failed with exit code 1: error: Timeout was reached"):
        status.report_from_parts(status.empty_report(None), parts, True)


def test_kernel_arguments_come_from_the_boot_entries_and_their_links():
    checksum = "a194fee69ffbcf85e6cc56ec3184082b1a77c546c0127009f78684a23be17967"
    link = "/ostree/boot.1/fedora/38b1ed15bb6cbf1710c3985c3691fc43d085b20c5757af8d0d6748dc916cde77/0"
    parts = {
        "bls:/boot/loader/entries/ostree-1.conf": {"out": f"title x\noptions rw quiet ostree={link}\n", "err": "", "rc": 0},
        "boot-links": {"out": f"{link}\t/ostree/deploy/fedora/deploy/{checksum}.0\n", "err": "", "rc": 0},
    }
    assert status.boot_kargs(parts) == {(checksum, 0): ["rw", "quiet", f"ostree={link}"]}
    parts["bls:/boot/loader/entries/ostree-2.conf"] = {"out": "", "err": "Permission denied", "rc": 1}
    assert status.boot_kargs(parts) == {}


@pytest.mark.parametrize(
    ("error", "kind", "expected"),
    [
        ("cannot connect to 10.0.0.9 port 22: timed out", "unreachable", "unreachable"),
        ("unknown host key ...", "host-key", "unreachable"),
        ("permission denied for root with 1 key(s) (publickey)", "auth", "unreachable"),
        ("the command did not finish in time", "command", "failed"),
    ],
)
def test_hosts_not_read_say_why(error, kind, expected):
    result = remote.Result(remote.Target("h", "10.0.0.9", 22, "root", (), True, (), (), False, 1), error=error, kind=kind)
    report = status.host_report(result, MARKER, as_root=True)
    assert (report["status"], report["error"], report["error_kind"]) == (expected, error, kind)
    assert report["booted"] is None and report["address"] == "10.0.0.9"


def test_a_script_that_did_not_run_is_a_failed_host():
    result = remote.Result(
        remote.Target("h", "10.0.0.9", 22, "core", (), True, (), (), False, 1),
        stderr=b"sudo: a password is required\n",
        rc=1,
    )
    report = status.host_report(result, MARKER, as_root=True)
    assert report["status"] == "failed"
    assert report["error"] == "the status script did not run: sudo: a password is required"


# --- the inventory, the document, the output -----------------------------------------------------------------------------


def test_hosts_and_groups_of_ansible_inventory_output():
    document = {
        "_meta": {"hostvars": {"a": {"ansible_host": "10.0.0.1"}}},
        "all": {"children": ["ungrouped", "web"]},
        "web": {"hosts": ["a", "b"]},
        "ungrouped": {"hosts": ["c"]},
    }
    assert status.inventory_hosts(document) == {
        "a": {"vars": {"ansible_host": "10.0.0.1"}, "groups": ["web"]},
        "b": {"vars": {}, "groups": ["web"]},
        "c": {"vars": {}, "groups": []},
    }


def test_the_real_ansible_inventory_with_a_limit(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    web:\n      hosts:\n        w1: {ansible_host: 10.0.0.1}\n        w2: {}\n"
        "    db:\n      hosts:\n        d1: {ansible_port: 2222}\n"
    )
    args = cli.build_parser().parse_args(["status", "-i", str(inventory), "-l", "web"])
    process = subprocess.Popen(
        status.inventory_argv(args), env=status.inventory_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    hosts = status.read_inventory(process)
    assert hosts == {"w1": {"vars": {"ansible_host": "10.0.0.1"}, "groups": ["web"]}, "w2": {"vars": {}, "groups": ["web"]}}


def document_of(reports: dict) -> dict:
    return {
        "format": status.FORMAT,
        "generated": "2026-12-06T00:00:00Z",
        "inventory": "hosts.yml",
        "limit": None,
        "hosts": reports,
        "summary": status.summarize(reports),
    }


@pytest.fixture
def fleet() -> dict:
    staged = status.host_report(recorded("silverblue-staged"), MARKER, as_root=True)
    gone = status.host_report(
        remote.Result(
            remote.Target("gone", "10.0.0.9", 22, "root", (), True, (), (), False, 1),
            error="cannot connect <script>alert(1)</script>",
            kind="unreachable",
        ),
        MARKER,
        as_root=True,
    )
    refused = status.refused_report("web-9: ansible_host is a Jinja template ('{{ x }}')")
    return document_of({"gone": gone, "silverblue-1": staged, "web-9": refused})


def test_summary_and_exit_codes(fleet):
    assert fleet["summary"] == {"hosts": 3, "ok": 1, "reboot_required": 1, "busy": 0, "unreachable": 1, "failed": 1}
    assert status.exit_code(fleet) == status.EXIT_NOT_READ == 3
    assert status.exit_code(document_of({"silverblue-1": fleet["hosts"]["silverblue-1"]})) == 0
    assert status.exit_code(document_of({})) == 1


def test_json_keys_are_the_same_for_every_host(fleet):
    keys = {name: sorted(report) for name, report in fleet["hosts"].items()}
    assert len({tuple(k) for k in keys.values()}) == 1, keys
    assert json.loads(json.dumps(fleet)) == fleet


def test_table(fleet):
    fleet["hosts"]["gone"]["error"] += " [/] [bold]"  # markup in what a host says stays text
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(status.summary_table(fleet))
    text = console.export_text()
    assert "[/] [bold]" in text
    assert "fedora:fedora/41/x86_64/silverblue 41.20241104.0 (a194fee69ffb)" in text
    assert "yes: staged-update, layering-changed" in text
    assert "cannot connect <script>alert(1)</script>" in text and "unreachable" in text
    assert "1 / 1" in text and "2 / 2" in text  # flatpaks: apps / runtimes; quadlets: system / users (all + core)


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.counts: dict[str, str] = {}
        self.scripts = 0
        self._row: dict[str, str] | None = None
        self._count: str | None = None
        self._cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and "data-host" in attrs:
            self._row, self._cells = attrs, []
        if tag == "td" and self._row is not None:
            self._in_cell = True
            self._cells.append("")
        if tag == "div" and "data-count" in attrs:
            self._count = attrs["data-count"]

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows[self._row["data-host"]] = {"status": self._row["data-status"], "cells": self._cells}
            self._row = None
        if tag == "td":
            self._in_cell = False
        if tag == "div":
            self._count = None

    def handle_data(self, data):
        if self._in_cell:
            self._cells[-1] += data
        elif self._count and data.strip().isdigit():
            self.counts[self._count] = data.strip()


def test_html_in_the_drift_reports_style(fleet):
    page = status.render_html(fleet)
    assert page.startswith("<!DOCTYPE html>") and "<title>Fleet status</title>" in page
    assert ".card{" in page  # the drift report's own style sheet
    parsed = Collect()
    parsed.feed(page)
    assert parsed.scripts == 0  # the host's error text is escaped, not markup
    assert parsed.counts == {"hosts": "3", "ok": "1", "reboot_required": "1", "busy": "0", "unreachable": "1", "failed": "1"}
    assert {name: row["status"] for name, row in parsed.rows.items()} == {
        "gone": "unreachable",
        "silverblue-1": "ok",
        "web-9": "failed",
    }
    assert parsed.rows["gone"]["cells"][4] == "cannot connect <script>alert(1)</script>"
    assert parsed.rows["silverblue-1"]["cells"][6] == "yes: staged-update, layering-changed"


# --- the command line --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["status"], ["status", "-i", "hosts.yml", "-f", "0"], ["status", "-i", "hosts.yml", "-T", "soon"]],
)
def test_usage_errors_exit_1(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 1
    assert "error:" in capsys.readouterr().err


def test_an_inventory_that_matches_no_host_exits_1(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    a: {}\n")
    done = subprocess.run(
        [sys.executable, "-m", "immutable_hosts.cli", "status", "-i", str(inventory), "-l", "nothing-like-this"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no host matched the inventory and limit" in done.stderr
