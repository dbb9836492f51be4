"""Run ansible-playbook or an ad-hoc module against named lab hosts; return per-task results, changed flags, diffs.

    lab = Lab.from_state_dir(state_dir)
    run = lab.playbook("site.yml", hosts=["silverblue-1"], check=True, diff=True)
    assert run.ok and not run.changed()
    run = lab.module("ansible.builtin.command", "rpm-ostree status --json", hosts=["silverblue-1"])
    run.results[0].result["stdout"]

Results come from the ``lab_results`` callback in ``callback_plugins/`` (one JSON line per task result).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SRC = REPO / "src"
CALLBACK_DIR = HERE / "callback_plugins"


@dataclasses.dataclass(frozen=True)
class TaskResult:
    host: str
    task: str
    action: str
    status: str  # ok | failed | skipped | unreachable
    changed: bool
    diff: Any
    result: dict[str, Any]
    ignore_errors: bool = False

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable") and not self.ignore_errors


@dataclasses.dataclass
class RunResult:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    results: list[TaskResult]
    stats: dict[str, dict[str, int]]

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not any(r.failed for r in self.results)

    def for_host(self, host: str) -> list[TaskResult]:
        return [r for r in self.results if r.host == host]

    def task(self, name: str, host: str | None = None) -> TaskResult:
        matches = [r for r in self.results if r.task == name and (host is None or r.host == host)]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} results for task {name!r} on {host or 'any host'}")
        return matches[0]

    def changed(self, host: str | None = None) -> bool:
        return any(r.changed for r in self.results if host is None or r.host == host)

    def changed_tasks(self, host: str | None = None) -> list[TaskResult]:
        return [r for r in self.results if r.changed and (host is None or r.host == host)]

    def diffs(self, host: str | None = None) -> list[Any]:
        return [r.diff for r in self.results if r.diff and (host is None or r.host == host)]

    def explain(self) -> str:
        """Text for assertion messages."""
        return f"argv: {' '.join(self.argv)}\nrc: {self.rc}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def ansible_tool(name: str) -> str:
    """Prefer the tool installed next to the running interpreter (the test venv), then PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; install ansible-core")
    return found


def parse_results(lines: list[str]) -> tuple[list[TaskResult], dict[str, dict[str, int]]]:
    results: list[TaskResult] = []
    stats: dict[str, dict[str, int]] = {}
    for line in lines:
        record = json.loads(line)
        if record["type"] == "stats":
            stats = record["hosts"]
            continue
        results.append(
            TaskResult(
                host=record["host"],
                task=record["task"],
                action=record["action"],
                status=record["status"],
                changed=record["changed"],
                diff=record["diff"],
                result=record["result"],
                ignore_errors=record.get("ignore_errors", False),
            )
        )
    return results, stats


def role_play(host: str, role: str, variables: dict[str, Any]) -> str:
    """A play (become, no facts) that runs one role with ``variables`` on one host, as YAML text."""
    entry = json.dumps({"role": role, "vars": variables})
    return f"- hosts: {host}\n  become: true\n  gather_facts: false\n  roles:\n    - {entry}\n"


def passes_on(checksum: str) -> str:
    """A health check that passes on the deployment of ``checksum`` only: an update that breaks the host's
    application, as the health gate's lab tests need one."""
    return f"# the application works on this deployment only\nostree admin status | grep -q '^\\* fedora {checksum}\\.'\n"


class Lab:
    """Runs Ansible against the hosts of one lab inventory."""

    def __init__(self, inventory: Path, env: dict[str, str] | None = None) -> None:
        self.inventory = inventory
        self.extra_env = env or {}

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> Lab:
        return cls(state_dir / "inventory.yml")

    def env(self, results_file: Path) -> dict[str, str]:
        base = {
            **os.environ,
            "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join(
                filter(None, [str(CALLBACK_DIR), os.environ.get("ANSIBLE_CALLBACK_PLUGINS", "")])
            ),
            "ANSIBLE_CALLBACKS_ENABLED": "lab_results",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",  # ad-hoc `ansible` loads aggregate callbacks only with this
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_FORKS": os.environ.get("ANSIBLE_FORKS", "10"),
            "LAB_RESULTS_FILE": str(results_file),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH", "")])),
        }
        return {**base, **self.extra_env}

    def _run(self, argv: list[str], timeout: float) -> RunResult:
        with tempfile.TemporaryDirectory(prefix="lab-harness-") as tmp:
            results_file = Path(tmp) / "results.jsonl"
            results_file.touch()
            done = subprocess.run(argv, env=self.env(results_file), capture_output=True, text=True, timeout=timeout, cwd=REPO)
            results, stats = parse_results(results_file.read_text().splitlines())
        return RunResult(argv, done.returncode, done.stdout, done.stderr, results, stats)

    def common_args(
        self, hosts: list[str] | None, check: bool, diff: bool, user: str | None, extra_vars: dict[str, Any] | None
    ) -> list[str]:
        args = ["-i", str(self.inventory)]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        merged_vars = dict(extra_vars or {})
        if user:
            # The inventory sets ansible_user (root); only extra vars outrank inventory vars.
            merged_vars["ansible_user"] = user
        if merged_vars:
            args += ["--extra-vars", json.dumps(merged_vars)]
        if hosts is not None and "--limit" not in args:
            args += ["--limit", ",".join(hosts) if hosts else "!all"]
        return args

    def playbook(
        self,
        playbook: str | Path,
        hosts: list[str] | None = None,
        *,
        check: bool = False,
        diff: bool = False,
        user: str | None = None,
        extra_vars: dict[str, Any] | None = None,
        args: list[str] | None = None,
        timeout: float = 900,
    ) -> RunResult:
        argv = [
            ansible_tool("ansible-playbook"),
            *self.common_args(hosts, check, diff, user, extra_vars),
            *(args or []),
            str(playbook),
        ]
        return self._run(argv, timeout)

    def playbook_text(self, text: str, hosts: list[str] | None = None, **kwargs: Any) -> RunResult:
        """Run a playbook given as YAML text (written to a temp file)."""
        with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="lab-play-", delete=False) as handle:
            handle.write(text)
        try:
            return self.playbook(handle.name, hosts, **kwargs)
        finally:
            os.unlink(handle.name)

    def module(
        self,
        module: str,
        module_args: str | dict[str, Any] = "",
        hosts: list[str] | None = None,
        *,
        check: bool = False,
        diff: bool = False,
        user: str | None = None,
        extra_vars: dict[str, Any] | None = None,
        timeout: float = 300,
    ) -> RunResult:
        pattern = ",".join(hosts) if hosts else "all"
        rendered = json.dumps(module_args) if isinstance(module_args, dict) else module_args
        argv = [ansible_tool("ansible"), pattern, *self.common_args(None, check, diff, user, extra_vars)]
        argv += ["-m", module]
        if rendered:
            argv += ["-a", rendered]
        return self._run(argv, timeout)
