"""Shared pieces for module tests: a sysroot laid out on disk, backend tools answering from a script, a runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import Runner
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import execute, new_module
from ansible_collections.immutable.hosts.tests.unit.compat import patch_module_args

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def make_sysroot(root: Path, entries: list) -> None:
    """A sysroot as ostree lays it out: deployments, boot.N links and BLS entries with kernel arguments."""
    (root / "run").mkdir(parents=True, exist_ok=True)
    (root / "run/ostree-booted").write_text("")
    (root / "boot/loader/entries").mkdir(parents=True, exist_ok=True)
    (root / "ostree/boot.1.1/fedora").mkdir(parents=True, exist_ok=True)
    if not (root / "ostree/boot.1").exists():
        os.symlink("boot.1.1", root / "ostree/boot.1")
    for number, (checksum, serial, options) in enumerate(entries, 1):
        (root / "ostree/deploy/fedora/deploy" / ("%s.%d" % (checksum, serial))).mkdir(parents=True)
        bootcsum = "b%063d" % number
        (root / "ostree/boot.1.1/fedora" / bootcsum).mkdir()
        os.symlink("../../../deploy/fedora/deploy/%s.%d" % (checksum, serial), root / "ostree/boot.1.1/fedora" / bootcsum / "0")
        (root / "boot/loader/entries" / ("ostree-%d-fedora.conf" % number)).write_text(
            "title Fedora Linux (ostree:%d)\nversion %d\noptions %s ostree=/ostree/boot.1/fedora/%s/0\n"
            % (number, number, options, bootcsum)
        )


class Tools:
    """Backend commands answering from a table keyed by the command line (binary basename and arguments).

    A value is one (rc, stdout, stderr) answer or a list of answers given in turn; unknown commands fail the test.
    """

    def __init__(self, answers: dict, present: tuple = ("rpm-ostree", "ostree", "systemctl")):
        self.answers = {key: (list(value) if isinstance(value, list) else [value]) for key, value in answers.items()}
        self.present = present
        self.calls = []

    def spawn(self, argv, env, timeout, stdin, cwd):
        key = " ".join([os.path.basename(argv[0]), *argv[1:]])
        assert env["LC_ALL"] == "C"
        self.calls.append(key)
        assert key in self.answers, "unexpected command: %s" % key
        queue = self.answers[key]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def runner(self) -> Runner:
        def sleep(seconds):
            self.clock += seconds

        self.clock = 0.0
        return Runner(
            spawn=self.spawn,
            clock=lambda: self.clock,
            sleep=sleep,
            exists=lambda path: os.path.basename(path) in self.present and path.startswith("/usr/bin/"),
        )


def call_module(module, args: dict, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def run_unit(unit, args: dict, host: Host, capsys) -> dict:
    """A module's whole run, as its main() does it, against ``host`` (a Host with the test's runner and root)."""
    with patch_module_args(args), pytest.raises(SystemExit):
        module = new_module(unit)
        execute(unit, module, host)
    return json.loads(capsys.readouterr().out)


def run_file_unit(unit, args: dict, root, capsys, check: bool = False, host_class=Host, **host) -> dict:
    """A module that only reads and writes files, with --diff and in check mode or not: its result (it runs no command).
    ``host_class`` is a Host of the test's own (one that answers fetches, for example)."""
    tools = Tools({})
    result = run_unit(
        unit,
        {**args, "_ansible_check_mode": check, "_ansible_diff": True},
        host_class(runner=tools.runner(), root=str(root), **host),
        capsys,
    )
    assert tools.calls == []
    return result
