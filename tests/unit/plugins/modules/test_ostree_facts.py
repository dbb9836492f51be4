"""ostree_facts end to end on a sysroot laid out on disk, with the backend tools answering from example documents."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.modules import ostree_facts
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot, run_unit

BOOTED = "cf95f674e208c245d56d0e1e669cd0843e1a9bc0046ba96db48c0b3ca17a7281"
PINNED = "7a22d0feb18d647d7b3598b1ac006c1d27d1202303fe7118628bc4b8e2ecb74f"
PLAIN_BOOTED = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
PLAIN_ROLLBACK = PINNED


def run_module(monkeypatch, capsys, root: Path, tools: Tools, args=None):
    del monkeypatch  # the host is given, not patched
    return run_unit(ostree_facts.UNIT, args or {}, Host(runner=tools.runner(), root=str(root)), capsys)


def fixture(name: str) -> str:
    return fixture_text(name)


def test_not_an_ostree_host(tmp_path, monkeypatch, capsys):
    result = run_module(monkeypatch, capsys, tmp_path, Tools({}, ("rpm-ostree",)))
    facts = result["ansible_facts"]["ostree"]
    assert result["changed"] is False and "failed" not in result
    assert facts["is_ostree"] is False and facts["backend"] == "none" and facts["deployments"] == []
    assert result["commands"] == []


def test_converged_host_costs_one_status_call(tmp_path, monkeypatch, capsys):
    make_sysroot(tmp_path, [(PLAIN_BOOTED, 0, "root=UUID=6f3b rw rhgb quiet"), (PLAIN_ROLLBACK, 0, "root=UUID=6f3b rw")])
    (tmp_path / "etc/systemd/system/timers.target.wants").mkdir(parents=True)
    (tmp_path / "etc/systemd/system/timers.target.wants/rpm-ostreed-automatic.timer").write_text("")
    (tmp_path / "etc/rpm-ostreed.conf").write_text("[Daemon]\nAutomaticUpdatePolicy=stage\n")
    tools = Tools(
        {"rpm-ostree status --json": (0, fixture("rpm-ostree-status-plain-silverblue.json"), "")}, ("rpm-ostree", "ostree")
    )
    result = run_module(monkeypatch, capsys, tmp_path, tools)
    facts = result["ansible_facts"]["ostree"]
    assert result["commands"] == [["/usr/bin/rpm-ostree", "status", "--json"]]
    assert facts["backend"] == "rpm-ostree" and facts["is_ostree"] is True and facts["osname"] == "fedora"
    assert facts["booted"]["checksum"] == PLAIN_BOOTED and facts["pending"] is None and facts["staged"] is None
    assert facts["rollback"]["checksum"] == PLAIN_ROLLBACK and facts["rollback"]["rollback"] is True
    assert facts["merge"]["checksum"] == PLAIN_BOOTED
    assert facts["kargs"] == ["root=UUID=6f3b", "rw", "rhgb", "quiet", facts["booted"]["kargs"][-1]]
    assert facts["rollback"]["kargs"][:2] == ["root=UUID=6f3b", "rw"]
    assert facts["reboot_required"] is False and facts["reboot_reasons"] == []
    assert facts["update_policy"] == {
        "policy": "stage",
        "policy_valid": True,
        "idle_exit_timeout": 60,
        "lock_layering": False,
        "recommends": True,
        "timer_enabled": True,
    }
    assert facts["transaction"] is None and facts["update_driver"] is None
    assert facts["architecture"] in ("x86_64", "aarch64") and facts["oci_architecture"] in ("amd64", "arm64")


def test_staged_deployment_kargs_come_from_rpm_ostree(tmp_path, monkeypatch, capsys):
    make_sysroot(tmp_path, [(BOOTED, 0, "root=UUID=6f3b rw quiet"), (PINNED, 0, "root=UUID=6f3b rw quiet")])
    tools = Tools(
        {
            "rpm-ostree status --json": (0, fixture("rpm-ostree-status-layered-staged-pinned.json"), ""),
            "rpm-ostree kargs": (0, "root=UUID=6f3b rw quiet mitigations=off ostree=/ostree/boot.0/fedora/x/0\n", ""),
        },
        ("rpm-ostree",),
    )
    result = run_module(monkeypatch, capsys, tmp_path, tools, {"status_retries": 0})
    facts = result["ansible_facts"]["ostree"]
    assert [c[1:] for c in result["commands"]] == [["status", "--json"], ["kargs"]]
    assert facts["pending"]["staged"] is True and facts["pending"]["pending"] is True
    assert facts["pending"]["requested_packages"] == ["htop", "vim-enhanced"]
    assert facts["kargs"][:4] == ["root=UUID=6f3b", "rw", "quiet", "mitigations=off"]
    assert facts["reboot_reasons"] == ["staged-update", "layering-changed", "kargs-changed"]
    assert [d["pinned"] for d in facts["deployments"]] == [False, False, True]
    assert facts["cached_update"]["version"] == "41.20241110.0"


def test_busy_host_reports_the_transaction(tmp_path, monkeypatch, capsys):
    make_sysroot(tmp_path, [])
    tools = Tools({"rpm-ostree status --json": (0, fixture("rpm-ostree-status-busy-update-driver.json"), "")}, ("rpm-ostree",))
    facts = run_module(monkeypatch, capsys, tmp_path, tools)["ansible_facts"]["ostree"]
    assert facts["transaction"]["method"] == "Rebase"
    assert facts["update_driver"] == {"name": "Zincati", "unit": "zincati.service"}
    assert facts["kargs"] is None


def test_bootc_only_host(tmp_path, monkeypatch, capsys):
    make_sysroot(tmp_path, [("5a6e2cbff81e83761b5c224de688f8059d720f99ba66c09476d96d745ac4a443", 0, "rw console=ttyS0")])
    tools = Tools({"bootc status --format=json": (0, fixture("bootc-status-container-host.json"), "")}, ("bootc", "ostree"))
    result = run_module(monkeypatch, capsys, tmp_path, tools)
    facts = result["ansible_facts"]["ostree"]
    assert facts["backend"] == "bootc"
    assert [d["staged"] for d in facts["deployments"]] == [True, False, False]
    assert facts["pending"]["version"] == "41.20241117.0" and facts["booted"]["kargs"][0] == "rw"
    assert facts["booted"]["origin_parsed"]["sigverify"] == "signed"
    assert facts["reboot_reasons"] == ["staged-update"]


def test_plain_ostree_host_falls_back_to_text_status(tmp_path, monkeypatch, capsys):
    make_sysroot(tmp_path, [(PLAIN_BOOTED, 0, "rw")])
    text = "* fedora %s.0\n    Version: 41.1\n    origin refspec: fedora:fedora/41/x86_64/silverblue\n" % PLAIN_BOOTED
    tools = Tools(
        {
            "ostree admin status --json": (1, "", "error: Unknown option --json\n"),
            "ostree admin status --skip-signatures": (1, "", "error: Unknown option --skip-signatures\n"),
            "ostree admin status": (0, text, ""),
        },
        ("ostree",),
    )
    result = run_module(monkeypatch, capsys, tmp_path, tools)
    facts = result["ansible_facts"]["ostree"]
    assert facts["backend"] == "ostree" and facts["booted"]["version"] == "41.1" and facts["kargs"] == ["rw", facts["kargs"][1]]
    assert facts["reboot_required"] is False
    assert len(result["commands"]) == 3


def test_status_failure_fails_with_the_error(tmp_path, monkeypatch, capsys):
    make_sysroot(tmp_path, [])
    tools = Tools({"rpm-ostree status --json": (1, "", "error: This system was not booted via libostree.\n")}, ("rpm-ostree",))
    result = run_module(monkeypatch, capsys, tmp_path, tools)
    assert result["failed"] is True and "not booted via libostree" in result["msg"]


def test_check_mode_reads_the_same(tmp_path, monkeypatch, capsys):
    make_sysroot(tmp_path, [(PLAIN_BOOTED, 0, "rw")])
    tools = Tools({"rpm-ostree status --json": (0, fixture("rpm-ostree-status-plain-silverblue.json"), "")}, ("rpm-ostree",))
    normal = run_module(monkeypatch, capsys, tmp_path, tools)
    checked = run_module(monkeypatch, capsys, tmp_path, tools, {"_ansible_check_mode": True})
    assert checked["changed"] is False and checked["ansible_facts"] == normal["ansible_facts"]
    # the roles tell a play's check_mode: true (which ansible_check_mode misses) from this
    assert checked["check_mode"] is True and normal["check_mode"] is False


def test_negative_retries_are_rejected(tmp_path, monkeypatch, capsys):
    result = run_module(monkeypatch, capsys, tmp_path, Tools({}, ()), {"status_retries": -1})
    assert result["failed"] is True and "status_retries" in result["msg"]


# --- plain ostree hosts, with what real ostree releases printed (tests/unit/fixtures/real/ostree) -------------------------

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "ostree"


def answer(version: str, name: str) -> tuple:
    base = REAL / version / name
    return (
        int(base.with_name(base.name + ".rc").read_text()),
        base.with_name(base.name + ".txt").read_text(),
        base.with_name(base.name + ".stderr").read_text(),
    )


def sysroot_with_origins(root: Path, version: str) -> None:
    make_sysroot(root, [])
    for origin in (REAL / version).glob("origin.*.origin"):
        _prefix, osname, _short, serial, _suffix = origin.name.split(".")
        text = origin.read_text()
        for state in ("booted-rollback", "two-stateroots"):
            for line in answer(version, "admin-status-" + state)[1].splitlines():
                parts = line[2:].split()
                if len(parts) >= 2 and parts[0] == osname and parts[1].startswith(_short) and parts[1].endswith("." + serial):
                    target = root / "ostree/deploy" / osname / "deploy" / (parts[1] + ".origin")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text)


def test_json_without_refspec_reads_the_origin_files(tmp_path, monkeypatch, capsys):
    """ostree 2025.3-2025.6 print no refspec in --json: before, every origin showed as unknown."""
    sysroot_with_origins(tmp_path, "2025.3")
    tools = Tools({"ostree admin status --json": answer("2025.3", "admin-status-two-stateroots.json")}, ("ostree",))
    facts = run_module(monkeypatch, capsys, tmp_path, tools)["ansible_facts"]["ostree"]
    assert [d["origin"] for d in facts["deployments"]] == [
        "rhcosremote:rhcos/x86_64/4.16",
        "labos:labos/x86_64/stable",
        "labos:labos/x86_64/stable",
    ]
    assert facts["pending"]["osname"] == "rhcos" and facts["reboot_reasons"] == ["stateroot-changed"]
    assert facts["architecture"] == "x86_64"


def test_a_lost_signature_does_not_stop_fact_gathering_where_ostree_can_skip_it(tmp_path, monkeypatch, capsys):
    """Before: ostree admin status without --skip-signatures exited 1 and the facts failed; --json (2025.3) and
    --skip-signatures (2024.1) never stop there."""
    make_sysroot(tmp_path, [])
    tools = Tools({"ostree admin status --json": answer("2025.3", "admin-status-unsigned-gpg-verify.json")}, ("ostree",))
    result = run_module(monkeypatch, capsys, tmp_path, tools)
    assert "failed" not in result and len(result["ansible_facts"]["ostree"]["deployments"]) == 3
    old = Tools(
        {
            "ostree admin status --json": answer("2022.7", "admin-status-unsigned-gpg-verify.json"),
            "ostree admin status --skip-signatures": answer("2022.7", "admin-status-unsigned-gpg-verify.skip-signatures"),
            "ostree admin status": answer("2022.7", "admin-status-unsigned-gpg-verify"),
        },
        ("ostree",),
    )
    result = run_module(monkeypatch, capsys, tmp_path, old)
    assert result["failed"] is True and "older than 2024.1" in result["msg"] and "no signatures found" in result["msg"]


def test_hardware_is_read_from_the_hosts_own_files(tmp_path, capsys):
    (tmp_path / "sys/firmware/devicetree/base").mkdir(parents=True)
    (tmp_path / "sys/firmware/devicetree/base/compatible").write_bytes(b"apple,j314s\0apple,arm-platform\0")
    host = Host(runner=Tools({}, ()).runner(), root=str(tmp_path), machine="aarch64", page_size=16384)
    facts = run_unit(ostree_facts.UNIT, {}, host, capsys)["ansible_facts"]["ostree"]
    assert facts["hardware"] == {
        "machine": "aarch64",
        "arch": "aarch64",
        "page_size": 16384,
        "compatible": ["apple,j314s", "apple,arm-platform"],
        "apple_silicon": True,
        "mac_vm": False,
        "hypervisor": None,
    }


def test_the_health_gates_verdict_is_reported_field_by_field(tmp_path, monkeypatch, capsys):
    """The state file of the health role's gate, as the gate writes it after a rollback; each field is checked for
    its type, unknown values are not passed on, and what is not JSON is reported as unreadable."""
    make_sysroot(tmp_path, [(PLAIN_BOOTED, 0, "root=UUID=6f3b rw"), (PLAIN_ROLLBACK, 0, "root=UUID=6f3b rw")])
    tools = Tools(
        {"rpm-ostree status --json": (0, fixture("rpm-ostree-status-plain-silverblue.json"), "")}, ("rpm-ostree", "ostree")
    )
    assert run_module(monkeypatch, capsys, tmp_path, tools)["ansible_facts"]["ostree"]["health"] is None
    state = tmp_path / "var/lib/immutable-hosts/health/state.json"
    state.parent.mkdir(parents=True)
    state.write_text(
        """{"version": 1, "deployment": "%s.0", "status": "green", "checked_at": "2026-12-05T14:02:11Z",
        "failures": [], "wanted_failures": ["20-disk-space.sh", 7], "failed_boots": 0, "max_failed_boots": 2,
        "action": "{{ lookup('pipe', 'id') }}", "healthy_deployments": ["%s.0"], "counted_boot": "x",
        "required": [{"name": "10-application.sh", "rc": 0, "output": ""}],
        "last_rollback": {"from": "%s.0", "at": "2026-12-05T14:01:40Z", "reason": "required check failed: 10-application.sh",
                          "failed_boots": 2, "command": ["rpm-ostree", "rollback"]}}"""
        % (PLAIN_BOOTED, PLAIN_BOOTED, PINNED)
    )
    health = run_module(monkeypatch, capsys, tmp_path, tools)["ansible_facts"]["ostree"]["health"]
    assert health == {
        "status": "green",
        "deployment": PLAIN_BOOTED + ".0",
        "checked_at": "2026-12-05T14:02:11Z",
        "failures": [],
        "wanted_failures": ["20-disk-space.sh"],
        "failed_boots": 0,
        "max_failed_boots": 2,
        "action": None,
        "healthy_before": True,
        "last_rollback": {
            "from": PINNED + ".0",
            "at": "2026-12-05T14:01:40Z",
            "reason": "required check failed: 10-application.sh",
            "failed_boots": 2,
        },
    }
    state.write_text("{truncated")
    assert run_module(monkeypatch, capsys, tmp_path, tools)["ansible_facts"]["ostree"]["health"] == {"status": "unreadable"}
