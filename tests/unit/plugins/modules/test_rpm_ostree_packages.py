"""immutable.hosts.rpm_ostree_packages with rpm-ostree answering from the contract's documents and messages."""

from __future__ import annotations

import json
import shutil

import pytest

from ansible_collections.immutable.hosts.plugins.modules import rpm_ostree_packages as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import FIXTURES, Tools, fixture_text, make_sysroot

STATUS = "rpm-ostree status --json"
STAGED = "rpm-ostree-status-layered-staged-pinned.json"
PLAIN = "rpm-ostree-status-plain-silverblue.json"
QUEUED = (0, 'Changes queued for next boot. Run "systemctl reboot" to start a reboot\n', "")
PROVIDED = (
    1,
    "",
    'error: "nano" is already provided by: nano-8.1-1.fc41.x86_64. Use --allow-inactive to explicitly require it.\n',
)


@pytest.fixture
def host(tmp_path):
    make_sysroot(tmp_path, [])
    return tmp_path


def with_requests(name: str, packages: list) -> str:
    doc = json.loads(fixture_text(name))
    doc["deployments"][0]["requested-packages"] = packages
    doc["deployments"][0]["packages"] = packages
    return json.dumps(doc)


def test_converged_host_runs_only_the_status_read(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(STAGED), "")})
    result = ostree_module(module, {"name": ["htop", "vim-enhanced"], "override_remove": ["firefox"]}, tools)
    assert result["changed"] is False and tools.calls == [STATUS]
    assert result["installed"] == [] and result["reboot_reasons"] == ["staged-update", "layering-changed"]


def test_install_stacks_on_the_staged_deployment_in_one_transaction(host, ostree_module):
    tools = Tools(
        {
            STATUS: [(0, fixture_text(STAGED), ""), (0, with_requests(STAGED, ["htop", "tmux", "vim-enhanced"]), "")],
            "rpm-ostree install --idempotent --unchanged-exit-77 tmux": QUEUED,
        }
    )
    result = ostree_module(module, {"name": ["htop", "tmux"]}, tools)
    assert result["changed"] is True and result["installed"] == ["tmux"]
    assert tools.calls[:2] == [STATUS, "rpm-ostree install --idempotent --unchanged-exit-77 tmux"]
    assert result["diff"]["before"]["requested_packages"] == ["htop", "vim-enhanced"]
    assert result["diff"]["after"]["requested_packages"] == ["htop", "tmux", "vim-enhanced"]
    assert result["deployment"]["requested_packages"] == ["htop", "tmux", "vim-enhanced"]


def test_package_provided_by_the_base_is_skipped_and_reported(host, ostree_module):
    tools = Tools(
        {
            STATUS: [(0, fixture_text(PLAIN), ""), (0, with_requests(PLAIN, ["htop"]), "")],
            "rpm-ostree install --idempotent --unchanged-exit-77 htop nano": PROVIDED,
            "rpm-ostree install --idempotent --unchanged-exit-77 htop": QUEUED,
        }
    )
    result = ostree_module(module, {"name": ["htop", "nano"]}, tools)
    assert result["changed"] is True and result["installed"] == ["htop"]
    assert result["provided_by_base"] == {"nano": "nano-8.1-1.fc41.x86_64"}
    assert "nano" not in result["diff"]["after"]["requested_packages"]


def test_only_base_provided_packages_is_no_change(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(PLAIN), ""), "rpm-ostree install --idempotent --unchanged-exit-77 nano": PROVIDED})
    result = ostree_module(module, {"name": ["nano"]}, tools)
    assert result["changed"] is False and result["provided_by_base"] == {"nano": "nano-8.1-1.fc41.x86_64"}


def test_check_mode_asks_with_dry_run_and_changes_nothing(host, ostree_module):
    tools = Tools(
        {
            STATUS: (0, fixture_text(PLAIN), ""),
            "rpm-ostree install --idempotent --unchanged-exit-77 htop nano --dry-run": PROVIDED,
            "rpm-ostree install --idempotent --unchanged-exit-77 htop --dry-run": (
                0,
                "Exiting because of '--dry-run' option\n",
                "",
            ),
        }
    )
    result = ostree_module(module, {"name": ["htop", "nano"], "_ansible_check_mode": True}, tools)
    assert (
        result["changed"] is True
        and result["installed"] == ["htop"]
        and result["provided_by_base"] == {"nano": "nano-8.1-1.fc41.x86_64"}
    )
    assert all("--dry-run" in call for call in tools.calls[1:])
    assert result["reboot_reasons"] == ["layering-changed"]


def test_check_mode_for_removals_needs_no_dry_run(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text(STAGED), "")})
    result = ostree_module(module, {"name": ["htop"], "state": "exact", "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and tools.calls == [STATUS]
    assert result["removed"] == ["vim-enhanced", "rpmfusion-free-release-41-1.noarch"]


def test_local_rpm_compared_by_nevra(host, ostree_module, tmp_path):
    (tmp_path / "srv").mkdir()
    shutil.copy(FIXTURES / "rpms/rpmfusion-free-release-41-1.noarch.rpm", tmp_path / "srv/rpmfusion.rpm")
    tools = Tools({STATUS: (0, fixture_text(STAGED), "")})
    # The host (rooted at tmp_path) names its file /srv/rpmfusion.rpm, and so does the user.
    result = ostree_module(module, {"name": ["htop", "vim-enhanced", "/srv/rpmfusion.rpm"]}, tools)
    assert result["changed"] is False and tools.calls == [STATUS]


def test_unknown_package_fails_with_rpm_ostree_message(host, ostree_module):
    tools = Tools(
        {
            STATUS: (0, fixture_text(PLAIN), ""),
            "rpm-ostree install --idempotent --unchanged-exit-77 nope": (1, "", "error: Packages not found: nope\n"),
        }
    )
    result = ostree_module(module, {"name": ["nope"]}, tools)
    assert result["failed"] is True and "Packages not found: nope" in result["msg"]


@pytest.mark.parametrize(
    "args",
    [
        {"name": ["htop;reboot"]},
        {"name": ["http://mirror.example/x-1-1.noarch.rpm"]},
        {"override_replace": ["http://mirror.example/kernel-6.12-1.x86_64.rpm"]},
        {"name": ["htop", "htop"]},
        {"name": ["/nonexistent/x.rpm"]},
        {"name": ["htop"], "state": "absent", "apply_live": True},
        {"override_remove": ["/tmp/x.rpm"]},
        {"override_replace": ["kernel"]},
        {"override_reset": ["all", "firefox"]},
        {"override_reset": ["fire fox"]},
        {"name": [], "state": "absent"},
        {"name": ["htop"], "wait_timeout": -5},
        {"name": ["htop"], "apply_live": True, "override_remove": ["firefox"]},
    ],
)
def test_bad_input_fails_before_anything_runs(host, ostree_module, args):
    tools = Tools({})
    result = ostree_module(module, args, tools)
    assert result["failed"] is True and tools.calls == []
