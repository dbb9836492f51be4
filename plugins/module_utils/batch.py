# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several immutable.hosts module calls in one process on the host (the module immutable.hosts.batch).

Every task costs a connection round trip, a Python start and an unpacked module on the host; on a converged fleet that
cost is nearly all of a drift check.  A batch pays it once for many calls.  Each call runs the very body the
standalone module runs (its ``execute``), with its arguments validated against that module's own argument spec, so
check mode, diffs and errors are the module's own.

Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.immutable.hosts.plugins.module_utils import (
    flatpak_module,
    flatpak_override_module,
    flatpak_remote_module,
    quadlet_module,
    rootless_user_module,
)

PREFIX = "immutable.hosts."
MODULES = {
    "flatpak_remote": flatpak_remote_module,
    "flatpak": flatpak_module,
    "flatpak_override": flatpak_override_module,
    "rootless_user": rootless_user_module,
    "quadlet": quadlet_module,
}


class BatchError(Exception):
    """A call that cannot run (unknown module, invalid arguments): raised before any call runs."""


class CallExit(BaseException):
    """exit_json of one call.  A BaseException, like the SystemExit it stands for, so no module body catches it."""

    def __init__(self, result):
        super().__init__()
        self.result = result


class CallFailed(CallExit):
    """fail_json of one call."""


class CallModule:
    """What the module bodies use of AnsibleModule, for one call inside the batch."""

    def __init__(self, outer, params, label):
        self.params = params
        self.check_mode = outer.check_mode
        self._outer = outer
        self._label = label

    def warn(self, warning):
        self._outer.warn("%s: %s" % (self._label, warning))

    def atomic_move(self, src, dest, unsafe_writes=False, keep_dest_attrs=True):
        return self._outer.atomic_move(src, dest, unsafe_writes=unsafe_writes, keep_dest_attrs=keep_dest_attrs)

    def exit_json(self, **result):
        raise CallExit(result)

    def fail_json(self, msg, **result):
        result.update(msg=msg, failed=True)
        raise CallFailed(result)


def short_name(module):
    return module[len(PREFIX) :] if module.startswith(PREFIX) else module


def default_label(short, params):
    """``quadlet bench-a``, ``flatpak org.example.Editor, org.example.Chat``, ``flatpak_override global``."""
    identity = params.get("name") if params.get("name") is not None else params.get("app")
    if isinstance(identity, list):
        identity = ", ".join(str(item) for item in identity)
    if identity is None and params.get("global"):
        identity = "global"
    label = short if identity is None else "%s %s" % (short, identity)
    owner = params.get("user")
    return "%s (user %s)" % (label, owner) if owner else label


def prepare(calls):
    """Every call checked completely before the first one runs, against its argument spec and then by the module's
    own checks (names, users, paths, rendered units): (short name, body, validated params, no-log values, label)."""
    prepared = []
    for number, call in enumerate(calls, 1):
        short = short_name(call["module"])
        if short not in MODULES:
            raise BatchError(
                "call %d: %s cannot run in a batch; these can: %s"
                % (number, call["module"], ", ".join(PREFIX + name for name in MODULES))
            )
        body = MODULES[short]
        validator = ArgumentSpecValidator(body.ARGUMENT_SPEC, **body.MODULE_OPTIONS)
        checked = validator.validate(dict(call.get("args") or {}))
        label = call.get("label") or default_label(short, checked.validated_parameters)
        if checked.error_messages:
            messages = []
            for error in checked.errors:
                prefix = "unsupported parameters: " if type(error).__name__ == "UnsupportedError" else ""
                messages.append(prefix + str(error.msg))
            raise BatchError("call %d (%s): invalid arguments for %s%s: %s" % (number, label, PREFIX, short, "; ".join(messages)))
        try:
            body.validate_call(checked.validated_parameters)
        except Exception as exc:  # every module error is a message for the user, given before anything ran
            raise BatchError("call %d (%s) would fail, so no call ran: %s" % (number, label, exc)) from None
        prepared.append((short, body, checked.validated_parameters, set(getattr(checked, "_no_log_values", ())), label))
    return prepared


def with_headers(diff, label):
    """The call's diff (a dict or a list of them) as a list, each headed by the call's label where it has no header."""
    items = diff if isinstance(diff, list) else [diff]
    headed = []
    for item in items:
        if isinstance(item, dict):
            item = dict(item)
            item.setdefault("before_header", label)
            item.setdefault("after_header", label)
        headed.append(item)
    return headed


def run(outer, calls):
    """Run the calls in order; stop at the first that fails.  Returns the batch's result (``failed`` set when one did)."""
    prepared = prepare(calls)
    no_log_values = set().union(*(hidden for _short, _body, _params, hidden, _label in prepared))
    results = []
    failed = None
    for short, body, params, hidden, label in prepared:
        call = CallModule(outer, params, label)
        try:
            body.execute(call)
        except CallFailed as exc:
            result, failed = exc.result, exc.result
        except CallExit as exc:
            result = exc.result
        else:
            raise RuntimeError("%s%s returned without a result" % (PREFIX, short))
        result = remove_values(result, hidden)
        result.update(module=PREFIX + short, item=label, invocation={"module_args": remove_values(dict(params), hidden)})
        result.setdefault("changed", False)
        results.append(result)
        if failed is not None:
            break
    diff = []
    commands = []
    for result in results:
        if result.get("changed") and result.get("diff"):
            diff.extend(with_headers(result["diff"], result["item"]))
        commands.extend(result.get("commands") or [])
    batch = {
        "changed": any(result["changed"] for result in results),
        "results": results,
        "diff": diff,
        "commands": commands,
        "no_log_values": no_log_values,
    }
    if failed is not None:
        batch["failed"] = True
        batch["msg"] = "%s failed: %s" % (results[-1]["item"], failed.get("msg"))
        batch["skipped_calls"] = [entry[4] for entry in prepared[len(results) :]]
    return batch
