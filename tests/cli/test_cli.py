"""The immutable-hosts command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from immutable_hosts import __version__, cli


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "immutable-hosts %s" % __version__


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: immutable-hosts" in capsys.readouterr().err


def test_console_script_is_installed():
    bindir = sys.executable.rsplit("/", 1)[0]
    result = subprocess.run([bindir + "/immutable-hosts", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("immutable-hosts 0.")
