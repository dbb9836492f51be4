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


def test_no_command_prints_help_and_exits_1(capsys):
    assert cli.main([]) == 1
    assert "usage: immutable-hosts" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["drift"],  # -i is required
        ["drift", "-i", "inventory.yml", "--frobnicate"],
        ["image", "build", "-i", "inventory.yml"],  # --group or --host
        ["adopt", "-i", "inventory.yml"],
        ["status"],  # -i is required
        ["lab", "up", "--hosts", "0"],
        ["nonsense"],
    ],
)
def test_a_usage_error_exits_1_never_2_which_means_drift(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 1
    assert "error:" in capsys.readouterr().err


def test_commands_lab_last_and_help_without_markup(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listed = capsys.readouterr().out
    names = [name for name in ("drift", "adopt", "image", "status", "lab") if "    " + name in listed]
    assert names == ["drift", "adopt", "image", "status", "lab"]
    assert listed.index("    lab") > listed.index("    status") > listed.index("    image")
    for command in (["drift", "--help"], ["adopt", "--help"], ["image", "build", "--help"], ["status", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(command)
        text = capsys.readouterr().out
        assert "``" not in text and ":class:" not in text, text


def test_ansible_playbook_options_are_passed_through():
    args = cli.build_parser().parse_args(
        ["drift", "-i", "inv.yml", "-u", "admin", "-f", "50", "-vvv", "-K", "--vault-password-file", "a", "--vault-id", "b@c"]
    )
    from immutable_hosts import drift

    argv = drift.playbook_argv(args, drift.Path("/p/drift.yml"))
    assert argv[1:] == [
        "-i", "inv.yml", "--check", "--diff", "--user", "admin", "--forks", "50", "-vvv", "--ask-become-pass",
        "--vault-password-file", "a", "--vault-id", "b@c", "/p/drift.yml",
    ]  # fmt: skip
    assert drift.asks(args) is True
    plain = cli.build_parser().parse_args(["drift", "-i", "inv.yml"])
    assert drift.playbook_argv(plain, drift.Path("/p/drift.yml"))[1:] == ["-i", "inv.yml", "--check", "--diff", "/p/drift.yml"]
    assert drift.asks(plain) is False


def test_console_script_is_installed():
    bindir = sys.executable.rsplit("/", 1)[0]
    result = subprocess.run([bindir + "/immutable-hosts", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("immutable-hosts 0.")


def test_the_collection_is_found_where_ansible_cfg_says(tmp_path, monkeypatch):
    from immutable_hosts import drift

    installed = tmp_path / "collections" / "ansible_collections" / "immutable" / "hosts"
    (installed / "plugins" / "callback").mkdir(parents=True)
    (installed / "plugins" / "callback" / "drift.py").write_text("")
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = ./collections\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH", raising=False)
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    monkeypatch.setattr(drift, "CHECKOUT", tmp_path / "not-a-checkout")
    with drift.collection_path() as (value, root):
        assert root == installed and str(tmp_path / "collections") in value.split(":")

    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = ./elsewhere\n")
    with pytest.raises(drift.DriftError, match="ansible-galaxy collection install") as raised, drift.collection_path():
        pass
    assert "elsewhere" in str(raised.value)
