"""immutable.hosts.update_policy on a real file, with systemctl and rpm-ostree answering from a table."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.modules import update_policy as module
from ansible_collections.immutable.hosts.tests.unit.plugins.module_utils.test_keyfile import SHIPPED
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, run_unit

IS_ENABLED = "systemctl is-enabled rpm-ostreed-automatic.timer"


@pytest.fixture
def run(tmp_path, capsys):
    conf = tmp_path / "etc/rpm-ostreed.conf"
    conf.parent.mkdir()
    conf.write_text(SHIPPED)

    def run(args, tools):
        return run_unit(module.UNIT, args, Host(runner=tools.runner(), root=str(tmp_path)), capsys)

    run.conf = conf
    return run


def test_policy_change_writes_reloads_and_enables_the_timer(run):
    tools = Tools(
        {
            IS_ENABLED: (1, "disabled\n", ""),
            "rpm-ostree reload": (0, "", ""),
            "systemctl enable --now rpm-ostreed-automatic.timer": (0, "", ""),
        }
    )
    result = run({"policy": "stage", "timer_enabled": True}, tools)
    assert result["changed"] is True
    assert tools.calls == [IS_ENABLED, "rpm-ostree reload", "systemctl enable --now rpm-ostreed-automatic.timer"]
    assert "AutomaticUpdatePolicy=stage" in run.conf.read_text() and "#Recommends=true" in run.conf.read_text()
    assert result["settings"]["policy"] == "stage" and result["timer_enabled"] is True
    assert result["diff"][0]["after"].count("\n") == SHIPPED.count("\n") + 1
    assert result["diff"][1] == {"before": {"timer_enabled": False}, "after": {"timer_enabled": True}}


def test_second_run_is_converged_without_rpm_ostree(run):
    run.conf.write_text(
        SHIPPED.replace("#AutomaticUpdatePolicy=none\n", "#AutomaticUpdatePolicy=none\nAutomaticUpdatePolicy=stage\n")
    )
    tools = Tools({IS_ENABLED: (0, "enabled\n", "")})
    result = run({"policy": "stage", "timer_enabled": True}, tools)
    assert result["changed"] is False and tools.calls == [IS_ENABLED]


def test_default_value_already_in_effect_is_no_change(run):
    tools = Tools({})
    result = run({"policy": "none", "idle_exit_timeout": 60, "lock_layering": False}, tools)
    assert result["changed"] is False and tools.calls == [] and run.conf.read_text() == SHIPPED


def test_check_mode_reports_the_diff_and_writes_nothing(run):
    tools = Tools({IS_ENABLED: (0, "enabled\n", "")})
    result = run({"lock_layering": True, "timer_enabled": False, "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and run.conf.read_text() == SHIPPED
    assert "LockLayering=true" in result["diff"][0]["after"] and tools.calls == [IS_ENABLED]


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"policy": "sometimes"},
        {"policy": "off"},
        {"policy": "ex-stage"},
        {"policy": "Stage"},
        {"policy": ""},
        {"policy": "stage\nLockLayering=true"},
        {"idle_exit_timeout": -1},
        {"idle_exit_timeout": "never"},
        {"idle_exit_timeout": 1.5},
        {"lock_layering": "perhaps"},
        {"timer_enabled": "sometimes"},
        {"policy": ["stage"]},
        {"policy": "stage", "unknown_option": True},
        {"path": None},
        {"policy": "none", "timer": True},
    ],
)
def test_bad_input(run, args):
    tools = Tools({})
    result = run(args, tools)
    assert result["failed"] is True and tools.calls == [] and run.conf.read_text() == SHIPPED


# --- a bootc-only host: bootc-fetch-apply-updates.timer alone ----------------------------------------------------------

BOOTC_IS_ENABLED = "systemctl is-enabled bootc-fetch-apply-updates.timer"


@pytest.fixture
def bootc_host(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/ostree-booted").write_text("")

    def run(args, answers, check=False):
        tools = Tools(answers, present=("bootc", "systemctl", "systemd-analyze"))
        result = run_unit(
            module.UNIT, dict(args, _ansible_check_mode=check), Host(runner=tools.runner(), root=str(tmp_path)), capsys
        )
        return result, tools.calls

    return run


def test_a_bootc_host_enables_bootcs_update_timer_and_nothing_else(bootc_host):
    enable = "systemctl enable --now bootc-fetch-apply-updates.timer"
    checked, calls = bootc_host({"timer_enabled": True}, {BOOTC_IS_ENABLED: (1, "disabled\n", "")}, check=True)
    assert checked["changed"] is True and calls == [BOOTC_IS_ENABLED]
    assert checked["backend"] == "bootc" and checked["timer"] == "bootc-fetch-apply-updates.timer"
    assert checked["diff"] == [{"before": {"timer_enabled": False}, "after": {"timer_enabled": True}}]
    done, calls = bootc_host({"timer_enabled": True}, {BOOTC_IS_ENABLED: (1, "disabled\n", ""), enable: (0, "", "")})
    assert done["changed"] is True and calls == [BOOTC_IS_ENABLED, enable] and done["settings"] is None
    again, calls = bootc_host({"timer_enabled": True}, {BOOTC_IS_ENABLED: (0, "enabled\n", "")})
    assert again["changed"] is False and calls == [BOOTC_IS_ENABLED]


def test_a_bootc_host_refuses_rpm_ostreed_settings(bootc_host):
    result, calls = bootc_host({"policy": "stage", "timer_enabled": True}, {})
    assert result["failed"] is True and calls == []
    assert "policy is a setting of rpm-ostreed.conf" in result["msg"] and "bootc-fetch-apply-updates.timer" in result["msg"]


# --- a maintenance window and AC power: drop-ins of the timer and its service -------------------------------------

WINDOW_DROPIN = "etc/systemd/system/rpm-ostreed-automatic.timer.d/50-immutable-hosts.conf"
AC_DROPIN = "etc/systemd/system/rpm-ostreed-automatic.service.d/50-immutable-hosts.conf"
CALENDAR = "systemd-analyze calendar -- Sat 02:00"
CALENDAR_OK = (0, "  Original form: Sat 02:00\nNormalized form: Sat *-*-* 02:00:00\n", "")


def systemd_tools(answers: dict) -> Tools:
    return Tools(answers, present=("rpm-ostree", "ostree", "systemctl", "systemd-analyze"))


def test_a_window_and_ac_power_are_drop_ins_written_then_converged(run, tmp_path):
    args = {"window": "Sat 02:00", "on_ac_power": True}
    checked = run(dict(args, _ansible_check_mode=True), systemd_tools({CALENDAR: CALENDAR_OK}))
    assert checked["changed"] is True and not (tmp_path / WINDOW_DROPIN).exists() and not (tmp_path / AC_DROPIN).exists()
    headers = [d.get("after_header") for d in checked["diff"][1:]]
    assert headers == ["/" + AC_DROPIN, "/" + WINDOW_DROPIN]
    tools = systemd_tools({CALENDAR: CALENDAR_OK, "systemctl daemon-reload": (0, "", "")})
    done = run(args, tools)
    assert done["changed"] is True and tools.calls == [CALENDAR, "systemctl daemon-reload"]
    assert done["window"] == "Sat 02:00" and done["on_ac_power"] is True
    window = (tmp_path / WINDOW_DROPIN).read_text()
    assert "[Timer]\nOnBootSec=\nOnUnitInactiveSec=\nOnCalendar=\nOnCalendar=Sat 02:00\n" in window
    assert "[Unit]\nConditionACPower=true\n" in (tmp_path / AC_DROPIN).read_text()
    tools = systemd_tools({CALENDAR: CALENDAR_OK})
    assert run(args, tools)["changed"] is False and tools.calls == [CALENDAR]
    # back to the distribution's schedule, on any power
    tools = systemd_tools({"systemctl daemon-reload": (0, "", "")})
    back = run({"window": "", "on_ac_power": False}, tools)
    assert back["changed"] is True and back["window"] is None and back["on_ac_power"] is False
    assert not (tmp_path / WINDOW_DROPIN).exists() and not (tmp_path / AC_DROPIN).exists()


def test_a_window_systemd_cannot_read_or_a_foreign_drop_in_is_refused(run, tmp_path):
    bad = "systemd-analyze calendar -- every full moon"
    result = run(
        {"window": "every full moon"},
        systemd_tools({bad: (1, "", "Failed to parse calendar specification 'every full moon': Invalid argument\n")}),
    )
    assert (
        result["failed"] is True and "not a systemd calendar expression" in result["msg"] and "Invalid argument" in result["msg"]
    )
    (tmp_path / AC_DROPIN).parent.mkdir(parents=True)
    (tmp_path / AC_DROPIN).write_text("[Unit]\nConditionACPower=false\n")
    result = run({"on_ac_power": True}, systemd_tools({}))
    assert result["failed"] is True and "was not written by this module" in result["msg"]
    assert (tmp_path / AC_DROPIN).read_text() == "[Unit]\nConditionACPower=false\n"


def test_a_bootc_host_gets_the_window_on_its_own_timer(bootc_host, tmp_path):
    args = {"window": "Sat 02:00"}
    done, calls = bootc_host(args, {CALENDAR: CALENDAR_OK, "systemctl daemon-reload": (0, "", "")})
    assert done["changed"] is True and calls == [CALENDAR, "systemctl daemon-reload"]
    assert (tmp_path / "etc/systemd/system/bootc-fetch-apply-updates.timer.d/50-immutable-hosts.conf").exists()


GATE = "usr/local/libexec/immutable-hosts/update-gate"


def test_the_update_gate_is_an_exec_condition_installed_while_needed(run, tmp_path):
    """A metered connection and a user session hold an update back through the gate program, named in an
    ExecCondition= of the service's drop-in beside AC power; the program goes when no gate needs it."""
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3").write_text("")
    args = {"on_ac_power": True, "skip_metered": True, "skip_user_sessions": True}
    checked = run(dict(args, _ansible_check_mode=True), systemd_tools({}))
    assert checked["changed"] is True and not (tmp_path / GATE).exists() and not (tmp_path / AC_DROPIN).exists()
    assert [d.get("after_header") for d in checked["diff"][1:]] == ["/" + AC_DROPIN, "/" + GATE]
    tools = systemd_tools({"systemctl daemon-reload": (0, "", "")})
    done = run(args, tools)
    assert done["changed"] is True and tools.calls == ["systemctl daemon-reload"]
    assert done["on_ac_power"] is True and done["skip_metered"] is True and done["skip_user_sessions"] is True
    assert (tmp_path / AC_DROPIN).read_text() == (
        "# Managed by Ansible (immutable.hosts.update_policy).\n[Unit]\nConditionACPower=true\n\n[Service]\n"
        "ExecCondition=/usr/bin/python3 /usr/local/libexec/immutable-hosts/update-gate --skip-metered --skip-user-sessions\n"
    )
    program = tmp_path / GATE
    assert (
        program.stat().st_mode & 0o777 == 0o755
        and "# Installed by Ansible (immutable.hosts.update_policy)." in program.read_text()
    )
    tools = systemd_tools({})
    assert run(args, tools)["changed"] is False and tools.calls == []
    # an option left unset keeps what the drop-in says
    done = run({"skip_metered": False}, systemd_tools({"systemctl daemon-reload": (0, "", "")}))
    assert done["changed"] is True and done["on_ac_power"] is True and done["skip_user_sessions"] is True
    assert "update-gate --skip-user-sessions\n" in (tmp_path / AC_DROPIN).read_text() and program.exists()
    done = run({"on_ac_power": False, "skip_user_sessions": False}, systemd_tools({"systemctl daemon-reload": (0, "", "")}))
    assert done["changed"] is True and not (tmp_path / AC_DROPIN).exists() and not program.exists()
    tools = systemd_tools({})
    assert run({"skip_metered": False, "skip_user_sessions": False}, tools)["changed"] is False


def test_a_program_at_the_gates_path_that_is_not_ours_is_left_alone(run, tmp_path):
    program = tmp_path / GATE
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\nexit 0\n")
    tools = systemd_tools({})
    assert run({"skip_metered": False}, tools)["changed"] is False and program.exists()
