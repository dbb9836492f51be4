# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way every module runs: a unit's validate, read, plan and apply, with check mode, diff, the commands run,
the reboot state and one failure path.

A unit is the domain of one module (``ostree/_kargs.py`` is ``immutable.hosts.kargs``'s):

- ``ARGUMENT_SPEC`` and ``MODULE_OPTIONS`` (mutually_exclusive and the like), the module's options;
- ``desired(params, host)``: the options checked completely and turned into what the host should be; nothing runs
  (a user may be looked up);
- ``read(host, desired)``: the current state, through the host reader, which reads each tool once per run;
- ``plan(current, desired)``: pure, a :class:`Plan` (changed, diff, the unit's actions, result fields, predicted reboot
  reasons);
- ``prepare(host, plan, desired)`` (optional, only when the plan changes something, in check mode too):
  what must hold before a change (rpm-ostree idle, no update driver in charge) or what only the tool itself can
  predict; it may return a new plan;
- ``apply(host, plan, desired)``: carries the plan out (never in check mode) and returns result fields that only a
  real run knows;
- ``report(host, plan, desired)`` (optional): the result fields read back after the change.

Whether the run is a check is the host's (``host.check_mode``), so every step reads it from there.

:func:`run_unit` runs one unit against a :class:`~..common._host.Host` (:func:`converge` once its ``desired`` is known);
a composite unit (``immutable.hosts.host_state``) has a ``run(params, host)`` of its own that converges many units
against one host.  :func:`run_module` is the whole ``main()`` of a module file.

Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _payload
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host


@dataclass
class Plan:
    """What a unit would do: ``changed``, the ``diff`` (before/after values), the unit's own ``actions``, result
    fields known before anything runs, and the reboot reasons the change would add."""

    changed: bool
    diff: Any
    actions: Any = None
    result: dict = field(default_factory=dict)
    reboot_reasons: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def run_unit(unit: Any, host: Any, params: dict, check_mode: bool) -> dict:
    """One unit against ``host``: the module's result (``changed``, ``diff``, its fields), or :class:`HostsError`."""
    host.check_mode = check_mode
    composite = getattr(unit, "run", None)
    if composite is not None:
        return composite(params, host)  # immutable.hosts.host_state: many units, each converged as below
    return converge(unit, host, unit.desired(params, host))


def converge(unit: Any, host: Any, desired: Any) -> dict:
    """The unit's read, plan, prepare, apply (not in check mode) and report, for ``desired`` (what ``unit.desired``
    returned): the result fields."""
    current = unit.read(host, desired)
    plan = unit.plan(current, desired)
    prepare = getattr(unit, "prepare", None)
    if plan.changed and prepare is not None:
        plan = prepare(host, plan, desired) or plan
    for warning in plan.warnings:
        host.warn(warning)
    result = dict(plan.result)
    if plan.changed and not host.check_mode:
        result.update(unit.apply(host, plan, desired) or {})
    report = getattr(unit, "report", None)
    if report is not None:
        result.update(report(host, plan, desired) or {})
    result.setdefault("changed", plan.changed)
    if plan.diff is not None:
        result.setdefault("diff", plan.diff)
    return result


def errors() -> tuple:
    """The exceptions that are a message for the user, not a bug: ours, and the operating system's."""
    return (HostsError, OSError)


def new_module(unit: Any) -> Any:
    """The unit's AnsibleModule. ansible-core before 2.19 logs the invocation to syslog, which refuses a NUL in an
    argument with a ValueError that those releases do not catch: a traceback instead of a message. The module then
    fails with the message, from a module that does not log its invocation (2.19 and later fail as cleanly by
    themselves)."""
    from ansible.module_utils.basic import AnsibleModule

    options = dict(argument_spec=unit.ARGUMENT_SPEC, supports_check_mode=True, **unit.MODULE_OPTIONS)
    try:
        return AnsibleModule(**options)
    except ValueError as exc:
        if "null" not in str(exc):
            raise
        quiet = AnsibleModule(no_log=True, **options)
        quiet.fail_json(msg="an argument contains U+0000 (NUL), which no option accepts: %s" % exc)
        raise  # not reached: fail_json exits


def run_module(unit: Any) -> None:
    """A module's ``main()``: the argument spec checked by AnsibleModule, the unit run against the host, and exactly
    one exit: ``exit_json`` with the result and the commands, or ``fail_json`` with the message."""
    module = new_module(unit)
    if not module.check_mode:
        _payload.keep_compiled()  # our files, compiled once, for the next runs; a check writes nothing (see _payload)
    execute(unit, module, Host())


def execute(unit: Any, module: Any, host: Any) -> None:
    try:
        result = run_unit(unit, host, module.params, module.check_mode)
    except errors() as exc:
        extra = dict(getattr(exc, "fields", {}) or {})
        module.fail_json(msg=message(exc), changed=bool(getattr(exc, "changed", False)), commands=host.commands, **extra)
    for warning in host.warnings:
        module.warn(warning)
    result.setdefault("commands", host.commands)
    module.exit_json(**result)


def message(exc: BaseException) -> Optional[str]:
    if isinstance(exc, OSError) and not isinstance(exc, HostsError) and exc.filename:
        return "%s: %s" % (exc.filename, exc.strerror or exc)
    return str(exc)
