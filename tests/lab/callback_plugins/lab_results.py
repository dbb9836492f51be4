"""Record every task result as one JSON line in ``$LAB_RESULTS_FILE`` (used by tests/lab/harness.py).

ansible-core ships no JSON callback (that is ansible.posix.json), so the harness brings this small one. It is an
aggregate callback: the normal stdout callback still prints, so failing runs stay readable in pytest output.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: lab_results
type: aggregate
short_description: write task results as JSON lines for the lab test harness
description: Writes one JSON object per task result and one for the play stats to the file named by LAB_RESULTS_FILE.
requirements: [LAB_RESULTS_FILE set in the environment]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("LAB_RESULTS_FILE")

    def _write(self, record: dict[str, Any]) -> None:
        if self._path:
            with open(self._path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, default=str) + "\n")

    def _task_record(self, result: Any, status: str) -> dict[str, Any]:
        task = result._task
        data = dict(result._result)
        return {
            "type": "task",
            "status": status,
            "host": result._host.get_name(),
            "task": task.get_name(),
            "action": task.action,
            "changed": bool(data.get("changed", False)),
            # A loop's diffs are in its items' results.
            "diff": data.get("diff")
            if "diff" in data
            else ([item["diff"] for item in data.get("results", []) if "diff" in item] or None),
            "result": data,
        }

    def v2_runner_on_ok(self, result: Any) -> None:
        self._write(self._task_record(result, "ok"))

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        record = self._task_record(result, "failed")
        record["ignore_errors"] = ignore_errors
        self._write(record)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._write(self._task_record(result, "skipped"))

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._write(self._task_record(result, "unreachable"))

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = sorted(stats.processed.keys())
        self._write({"type": "stats", "hosts": {h: stats.summarize(h) for h in hosts}})
