# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: drift
type: aggregate
short_description: Write a per-host drift report (every change or would-be change, with its diff) as one JSON document
version_added: 0.1.0
author:
  - immutable.hosts contributors (@immutable-hosts)
description:
  - Collects, per host, every task result that changed or would change (in check mode), with the diff the module
    returned (normalised to plain JSON data), plus failed tasks, unreachable hosts, and tasks that check mode
    skipped because their module cannot predict its changes.
  - At the end of the playbook it writes one JSON document to O(report_path) (written atomically). The
    C(immutable-hosts drift) command runs C(playbooks/drift.yml) with this callback and renders the document as
    Markdown and HTML.
  - It is an aggregate callback, so the normal stdout callback keeps printing. Enable it with
    C(ANSIBLE_CALLBACKS_ENABLED=immutable.hosts.drift) or C(callbacks_enabled) in C(ansible.cfg).
  - Loop results are recorded per item, and the resources of M(immutable.hosts.host_state) per resource, each under
    the module whose unit converged it, so the report names the same resources whichever way a play called them.
    Results of tasks with C(no_log) keep their C(changed) flag but no diff.
requirements:
  - Enabled in C(callbacks_enabled) (C(ANSIBLE_CALLBACKS_ENABLED)).
options:
  report_path:
    description:
      - The JSON document the report is written to. Its directory is created when missing.
    type: path
    default: ./drift.json
    env:
      - name: IMMUTABLE_HOSTS_DRIFT_REPORT
    ini:
      - section: callback_drift
        key: report_path
  events_path:
    description:
      - When set, one JSON line per task result (host, task, status, changed) is appended to this file while the
        playbook runs, so that a caller can show progress per host.
    type: path
    env:
      - name: IMMUTABLE_HOSTS_DRIFT_EVENTS
    ini:
      - section: callback_drift
        key: events_path
notes:
  - The document has the keys C(format) (C(immutable.hosts.drift/1)), C(generated), C(ansible_version),
    C(check_mode), C(playbooks), C(hosts) and C(summary). Each host has C(status) (C(in_sync), C(drifted),
    C(failed) or C(unreachable)), C(changes) (task, action, resource, diff), C(failures), C(unreachable),
    C(unchecked), the play recap C(stats) and its inventory C(groups) (but C(all) and C(ungrouped)), by which
    C(immutable-hosts drift merge) sums up a fleet.
  - A host whose play set the fact C(immutable_hosts_ring) (C(playbooks/upgrade.yml) does, for each host's ring of a
    rollout) has C(ring), and C(summary) then has C(rings), the counts of each ring in the order the rings first
    appeared.
seealso:
  - name: ansible.builtin.junit
    description: An aggregate callback that records what changed, but not how.
    link: https://docs.ansible.com/ansible/latest/collections/ansible/builtin/junit_callback.html
"""

import datetime
import json
import os
import tempfile

from ansible import context
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version

FORMAT = "immutable.hosts.drift/1"

# Arguments naming the resource a task manages, in order of preference (for the hosts x resources matrix).
IDENTITY_KEYS = ("app", "name", "copr", "path", "dest", "key", "unit", "repo")
# Arguments telling installations apart (system or a user's) for the Flatpak and Podman modules.
SCOPE_KEYS = ("user", "scope", "installation")
# Modules of this collection whose resource is the host itself, whatever their arguments.
HOST_RESOURCES = {
    "rebase": "os image",
    "rpm_ostree_packages": "layered packages",
    "kargs": "kernel arguments",
    "update_policy": "update policy",
    "deployment": "deployment",
    "flatpak": "flatpak apps",
    "initramfs": "initramfs",
}
# Modules of this collection named by one option of their own, with what they are called when it is unset.
NAMED_BY = {"image_policy": ("scope", "default"), "registry_auth": ("registry", None)}
COLLECTION_PREFIX = "immutable.hosts."
# The fact a play sets to name a host's ring in a rollout; the report groups hosts by it.
RING_FACT = "immutable_hosts_ring"
# Messages of results that check mode skipped without predicting them (modules without check mode; command, shell).
UNCHECKED_MESSAGES = ("does not support check mode", "would have run if not in check mode")


def json_safe(value, depth=0):
    """Plain JSON data from a module result value: str keys, lists for tuples and sets, text for anything else."""
    if depth > 64:
        return to_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {to_text(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(item, depth + 1) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    return to_text(value)


def normalise_diff(diff):
    """A module's ``diff`` (one dict or a list of them) as a list of {before, after, ...} with JSON-safe data."""
    if not diff:
        return []
    items = diff if isinstance(diff, (list, tuple)) else [diff]
    normalised = []
    for item in items:
        if not isinstance(item, dict):
            normalised.append({"prepared": to_text(item)})
            continue
        entry = {}
        for key in ("before_header", "after_header", "before", "after", "prepared"):
            if key in item:
                entry[key] = json_safe(item[key])
        if entry:
            normalised.append(entry)
    return normalised


def short_action(action):
    action = to_text(action or "")
    if action.startswith(COLLECTION_PREFIX):
        return action[len(COLLECTION_PREFIX) :]
    if action.startswith("ansible.builtin."):
        return action[len("ansible.builtin.") :]
    return action


def resource_name(action, args, item_label=None):
    """A stable name for what a task manages, such as ``flatpak_remote flathub`` or ``layered packages``."""
    short = short_action(action)
    args = args if isinstance(args, dict) else {}
    if short in NAMED_BY:
        # Their "scope" is no installation, and a key or a password is no name.
        option, unset = NAMED_BY[short]
        value = args.get(option)
        label = "%s %s" % (short, unset if value is None else to_text(value) if value != "" else '""')
        extra = ["transport=%s" % to_text(args["transport"])] if args.get("transport") not in (None, "docker") else []
        extra += ["user=%s" % to_text(args["user"])] if args.get("user") else []
        return "%s (%s)" % (label, ", ".join(extra)) if extra else label
    scope = [
        "%s=%s" % (key, to_text(args[key]))
        for key in SCOPE_KEYS
        if args.get(key) not in (None, "", False) and not (key == "scope" and args.get("user"))
    ]
    if short in HOST_RESOURCES:
        label = HOST_RESOURCES[short]
    else:
        identity = None
        if args.get("global") is True:
            identity = "global"
        for key in IDENTITY_KEYS:
            if identity is None and isinstance(args.get(key), (str, int)) and not isinstance(args.get(key), bool):
                identity = to_text(args[key])
        label = short if identity is None else "%s %s" % (short, identity)
        if identity is None and item_label is not None:
            label = "%s %s" % (short, to_text(item_label))
    if scope:
        label = "%s (%s)" % (label, ", ".join(scope))
    return label


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def result_data(result):
    """The task's result dict: ``result`` since ansible-core 2.19, ``_result`` before."""
    return result.result if hasattr(result, "result") else result._result


def result_host(result):
    return result.host if hasattr(result, "host") else result._host


def result_task(result):
    return result.task if hasattr(result, "task") else result._task


class CallbackModule(CallbackBase):
    """Collects would-change results with their diffs, per host, and writes one JSON document at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "immutable.hosts.drift"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self.hosts = {}
        self.playbooks = []
        self.play = None
        self.started = utc_now()
        self.check_mode = None
        self.rings = []  # in the order they were met

    # --- collecting ------------------------------------------------------------------------------------------------

    def host(self, name):
        name = to_text(name)
        if name not in self.hosts:
            self.hosts[name] = {"changes": [], "failures": [], "unreachable": None, "unchecked": [], "stats": {}}
        return self.hosts[name]

    def note_groups(self, host):
        """The host's inventory groups (but all and ungrouped), for the fleet report's summary by group."""
        entry = self.host(host.get_name())
        if "groups" not in entry and hasattr(host, "get_groups"):
            entry["groups"] = sorted({to_text(g.name) for g in host.get_groups()} - {"all", "ungrouped"})

    def emit(self, host, task, status, changed):
        path = self.get_option("events_path")
        if not path:
            return
        record = {"host": host, "task": task, "status": status, "changed": bool(changed)}
        with open(path, "a", encoding="utf-8") as events:
            events.write(json.dumps(record) + "\n")

    def describe(self, result):
        task = result_task(result)
        path = task.get_path() if hasattr(task, "get_path") else None
        return {
            "play": self.play,
            "task": to_text(task.get_name()),
            "action": to_text(task.action),
            "path": to_text(path) if path else None,
        }

    @staticmethod
    def module_args(result, data):
        """The arguments the module ran with (``invocation``); else the task's untemplated ones, completed by what
        the result says (``dest``, ``path``, ``name``), as loop items may carry no ``invocation``."""
        invocation = data.get("invocation")
        if isinstance(invocation, dict) and isinstance(invocation.get("module_args"), dict):
            return invocation["module_args"]
        task_args = getattr(result_task(result), "args", None)
        task_args = task_args if isinstance(task_args, dict) else {}
        args = {}
        for key, value in task_args.items():
            if not (isinstance(value, str) and ("{{" in value or "{%" in value)):
                args[key] = value
        for key in IDENTITY_KEYS + SCOPE_KEYS:
            if key not in args and isinstance(data.get(key), str):
                args[key] = data[key]
        return args

    def record_change(self, result, data, item=None):
        action = result_task(result).action
        if short_action(action) == "host_state" and isinstance(data.get("module"), str):
            # One resource of immutable.hosts.host_state: the module whose unit converged it, the options naming it.
            action = data["module"]
            args = data.get("args") if isinstance(data.get("args"), dict) else {}
        else:
            args = self.module_args(result, data)
        entry = self.describe(result)
        entry["action"] = to_text(action)
        entry["resource"] = resource_name(action, args, item)
        if item is not None:
            entry["item"] = json_safe(item)
        entry["diff"] = normalise_diff(data.get("diff"))
        for key in ("msg", "reboot_required"):
            if key in data and data[key] not in (None, ""):
                entry[key] = json_safe(data[key])
        commands = data.get("commands")
        if isinstance(commands, list):
            entry["commands"] = json_safe(commands)
        self.host(result_host(result).get_name())["changes"].append(entry)

    def v2_playbook_on_start(self, playbook):
        self.playbooks.append(to_text(getattr(playbook, "_file_name", "") or ""))
        if self.check_mode is None:
            self.check_mode = bool(context.CLIARGS.get("check", False))

    def v2_playbook_on_play_start(self, play):
        self.play = to_text(play.get_name())
        if getattr(play, "check_mode", None) is True:
            self.check_mode = True

    def v2_runner_on_ok(self, result):
        data = result_data(result)
        name = result_host(result).get_name()
        self.note_groups(result_host(result))
        self.host(name)
        loop_results = data.get("results")
        resources = data.get("resources") if short_action(result_task(result).action) == "host_state" else None
        if isinstance(resources, list) and all(isinstance(r, dict) for r in resources):
            for entry in resources:
                if entry.get("changed"):
                    self.record_change(result, entry)
        elif isinstance(loop_results, list) and loop_results and all(isinstance(r, dict) for r in loop_results):
            for item in loop_results:
                if item.get("changed") and not item.get("skipped"):
                    label = item.get("_ansible_item_label", item.get("item"))
                    self.record_change(result, item, item=label)
        elif data.get("changed"):
            self.record_change(result, data)
        facts = data.get("ansible_facts")
        if isinstance(facts, dict) and isinstance(facts.get(RING_FACT), str):
            # the ring of a rollout (playbooks/upgrade.yml names it with set_fact)
            self.host(name)["ring"] = to_text(facts[RING_FACT])
            if self.host(name)["ring"] not in self.rings:
                self.rings.append(self.host(name)["ring"])
        self.emit(name, to_text(result_task(result).get_name()), "ok", data.get("changed"))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        data = result_data(result)
        name = result_host(result).get_name()
        self.note_groups(result_host(result))
        entry = self.describe(result)
        entry["msg"] = json_safe(data.get("msg") or data.get("stderr") or data.get("exception") or "failed")
        entry["ignored"] = bool(ignore_errors)
        self.host(name)["failures"].append(entry)
        self.emit(name, entry["task"], "failed", data.get("changed"))

    def v2_runner_on_skipped(self, result):
        data = result_data(result)
        name = result_host(result).get_name()
        self.note_groups(result_host(result))
        self.host(name)
        message = to_text(data.get("msg", "")).lower()
        if any(text in message for text in UNCHECKED_MESSAGES):
            entry = self.describe(result)
            entry["msg"] = to_text(data["msg"])
            self.host(name)["unchecked"].append(entry)
        self.emit(name, to_text(result_task(result).get_name()), "skipped", False)

    def v2_runner_on_unreachable(self, result):
        data = result_data(result)
        name = result_host(result).get_name()
        self.note_groups(result_host(result))
        entry = self.describe(result)
        entry["msg"] = json_safe(data.get("msg") or "unreachable")
        self.host(name)["unreachable"] = entry
        self.emit(name, entry["task"], "unreachable", False)

    # --- the report ----------------------------------------------------------------------------------------------------

    def report(self, stats):
        for name in stats.processed:
            self.host(name)["stats"] = json_safe(stats.summarize(name))
        hosts = {}
        for name in sorted(self.hosts):
            host = self.hosts[name]
            failed = [f for f in host["failures"] if not f["ignored"]]
            if host["unreachable"]:
                status = "unreachable"
            elif failed:
                status = "failed"
            elif host["changes"]:
                status = "drifted"
            else:
                status = "in_sync"
            hosts[name] = dict(status=status, **host)
        statuses = [host["status"] for host in hosts.values()]
        summary = {
            "hosts": len(hosts),
            "in_sync": statuses.count("in_sync"),
            "drifted": sum(1 for host in hosts.values() if host["changes"]),
            "failed": statuses.count("failed"),
            "unreachable": statuses.count("unreachable"),
            "changes": sum(len(host["changes"]) for host in hosts.values()),
        }
        rings = {
            ring: {"ring": ring, "hosts": 0, "in_sync": 0, "drifted": 0, "failed": 0, "unreachable": 0} for ring in self.rings
        }
        for host in hosts.values():
            if host.get("ring") is not None:
                counts = rings[host["ring"]]
                counts["hosts"] += 1
                counts[host["status"]] += 1
        if rings:
            summary["rings"] = list(rings.values())
        return {
            "format": FORMAT,
            "generated": utc_now(),
            "started": self.started,
            "ansible_version": ansible_version,
            "check_mode": bool(self.check_mode),
            "playbooks": self.playbooks,
            "hosts": hosts,
            "summary": summary,
        }

    def write(self, document):
        path = os.path.abspath(os.path.expanduser(self.get_option("report_path")))
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory)
        # Diffs carry what hosts hold (environment values of overrides and units): the report is its reader's alone,
        # written whole (synced, renamed, directory synced) so a reader never sees half of it.
        fd, temp = tempfile.mkstemp(prefix=".drift.", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                json.dump(document, handle, indent=2, sort_keys=False)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
        return path

    def v2_playbook_on_stats(self, stats):
        try:
            path = self.write(self.report(stats))
        except (OSError, TypeError, ValueError) as error:
            self._display.warning("immutable.hosts.drift: could not write the drift report: %s" % to_text(error))
            return
        self._display.v("Drift report: %s" % path)
