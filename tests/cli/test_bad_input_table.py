"""The bad-input table of the command line: `immutable-hosts adopt` and `immutable-hosts lab` refuse hostile or
malformed input with a message, without a traceback, and change nothing on disk (the inventory, host_vars/, the lab
state directory).  The modules' table is tests/unit/plugins/modules/test_bad_input_table.py."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from immutable_hosts import adopt
from immutable_hosts.lab import cli as lab_cli

INVENTORY = "all:\n  children:\n    silverblue:\n      hosts:\n        silverblue-1: {}\n        silverblue-2: {}\n"


def tree(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, stat.S_IMODE(p.lstat().st_mode))
        for p in sorted(root.rglob("*"))
    }


# --- adopt ---------------------------------------------------------------------------------------------------------------

ADOPT_HOSTS = [
    ("", "is not a host name"),
    (" ", "is not a host name"),
    ("silverblue-1\n", "is not a host name"),
    ("silverblue-1\u2028x", "is not a host name"),
    ("silverblue-1\x00", "is not a host name"),
    ("silverblue-1,silverblue-2", "is not a host name"),
    ("silverblue-1:silverblue-2", "is not a host name"),
    ("silverblue-*", "is not a host name"),
    ("!silverblue-1", "is not a host name"),
    ("&silverblue", "is not a host name"),
    ("~silverblue-.*", "is not a host name"),
    ("../../x", "is not a host name"),
    ("x/../../y", "is not a host name"),
    ("..", "is not a host name"),
    (".hidden", "is not a host name"),
    ("-v", "is not a host name"),
    ("--extra-vars=@/etc/shadow", "is not a host name"),
    ("silverblue 1", "is not a host name"),
    ("$(reboot)", "is not a host name"),
    ("x" * 300, "is not a host name"),
    ("silverblue", "is a group of"),
    ("all", "is a group of"),
    ("ungrouped", "is a group of"),
    ("silverblue-9", "is not a host of"),
]

ADOPT_FILES = [
    ("---\na: 1\n---\nb: 2\n", "not one readable YAML document"),
    ("a: [1, 2\n", "not one readable YAML document"),
    ("a: 1\n\tb: 2\n", "not one readable YAML document"),
    ("key: 'unterminated\n", "not one readable YAML document"),
    ("- a list\n", "not a YAML mapping"),
    ("just a string\n", "not a YAML mapping"),
]


def adopt_args(tmp_path: Path, host: str, host_vars: str | None = None) -> argparse.Namespace:
    inventory = tmp_path / "inventory.yml"
    return argparse.Namespace(inventory=str(inventory), host=host, yes=True, host_vars=host_vars)


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "silverblue-2.yml").write_text("ansible_become_password: hunter2\n")
    (tmp_path / "host_vars" / "silverblue-2.yml").chmod(0o600)
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: pytest.fail("a bad input reached the host"))
    return tmp_path


@pytest.mark.parametrize(("host", "message"), ADOPT_HOSTS)
def test_adopt_refuses_what_is_not_one_host(inventory, capsys, host, message):
    before = tree(inventory)
    assert adopt.run(adopt_args(inventory, host)) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert tree(inventory) == before


@pytest.mark.parametrize(("content", "message"), ADOPT_FILES)
def test_adopt_refuses_an_unreadable_host_vars_file(inventory, capsys, content, message):
    (inventory / "host_vars" / "silverblue-1.yml").write_text(content)
    before = tree(inventory)
    assert adopt.run(adopt_args(inventory, "silverblue-1")) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert tree(inventory) == before


def test_adopt_refuses_a_file_that_is_not_utf8(inventory, capsys):
    (inventory / "host_vars" / "silverblue-1.yml").write_bytes(b"a: \xff\xfe\n")
    before = tree(inventory)
    assert adopt.run(adopt_args(inventory, "silverblue-1")) == 1
    assert "utf-8" in capsys.readouterr().err.lower() and tree(inventory) == before


def test_adopt_refuses_a_missing_inventory(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: pytest.fail("a bad input reached the host"))
    assert adopt.run(argparse.Namespace(inventory=str(tmp_path / "nowhere.yml"), host="web-1", yes=True, host_vars=None)) == 1
    err = capsys.readouterr().err
    assert "cannot read the inventory" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# --- lab ----------------------------------------------------------------------------------------------------------------

LAB = [
    (["up", "--name", "../../x"], "is not a host name prefix"),
    (["up", "--name", "a/b"], "is not a host name prefix"),
    (["up", "--name", "Web"], "is not a host name prefix"),
    (["up", "--name", "web;reboot"], "is not a host name prefix"),
    (["up", "--name", "-x"], "expected one argument"),
    (["up", "--name", "web\n1"], "is not a host name prefix"),
    (["up", "--name", "web\u2028"], "is not a host name prefix"),
    (["up", "--name", "x" * 40], "is not a host name prefix"),
    (["up", "--name", ""], "is not a host name prefix"),
    (["up", "--name", "web-"], "is not a host name prefix"),
    (["up", "--name", "all"], None),  # a valid prefix: not a bad input (kept to show the rule's edge)
    (["up", "--hosts", "0"], "--hosts is between 1 and"),
    (["up", "--hosts", "-1"], "--hosts is between 1 and"),
    (["up", "--hosts", "99999"], "--hosts is between 1 and"),
    (["up", "--hosts", "three"], "is not a number of hosts"),
    (["up", "--profile", "windows"], "invalid choice: 'windows'"),
    (["exec", "--user", "alice", "silverblue-1", "--", "true"], "invalid choice: 'alice'"),
    (["sim", "publish", "../../etc/passwd"], "lab sim publish: the lab has no image server content"),
    (["sim", "publish"], "usage: lab sim publish REF|IMAGE"),
    (["sim", "silverblue-1", "reformat"], "usage: lab sim HOST"),
]


@pytest.mark.parametrize(("argv", "message"), [case for case in LAB if case[1] is not None])
def test_the_lab_cli_refuses_bad_input_and_touches_no_state(tmp_path, capsys, argv, message):
    state = tmp_path / "state"
    state.mkdir()
    before = tree(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        lab_cli.main([argv[0], "--state-dir", str(state), *argv[1:]])
    out = capsys.readouterr()
    text = out.err + out.out + (exit_info.value.code if isinstance(exit_info.value.code, str) else "")
    assert exit_info.value.code not in (0, None) and message in text, text
    assert "Traceback" not in text and tree(tmp_path) == before


def test_the_prefix_rule_accepts_plain_names():
    assert lab_cli.host_prefix("all") == "all" and lab_cli.host_prefix("web-2") == "web-2"
