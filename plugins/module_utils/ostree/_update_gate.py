# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The gate of unattended updates that systemd cannot express as a condition: not on a metered connection, not
while a local user session is active.

``immutable.hosts.update_policy`` installs :data:`PROGRAM` at :data:`GATE_PATH` and names it in an ``ExecCondition=``
of the update service's drop-in: systemd runs it before the update, and an exit status of 1 skips the update without
failing the unit (``systemd.service(5)``), with the reason in the journal.

- Metered: NetworkManager's ``Metered`` property (``NMMetered``: 1 yes and 3 guess-yes are metered; 0 unknown, 2 no,
  4 guess-no are not), read with ``busctl``. Without NetworkManager nothing says the connection is metered.
- A user session: a logind session of a user class (``user``; since systemd 256 also ``user-early``,
  ``user-incomplete``; not ``background``, ``manager`` or ``greeter``) that is not remote (an SSH login is remote; a desktop, a
  console login is not), in state ``active`` or ``online``.

Standard library only, Python 3.9+ (the program too).
"""

from __future__ import annotations

GATE_PATH = "/usr/local/libexec/immutable-hosts/update-gate"
MARKER = "# Installed by Ansible (immutable.hosts.update_policy)."
FLAGS = {"skip_metered": "--skip-metered", "skip_user_sessions": "--skip-user-sessions"}

PROGRAM = (
    "#!/usr/bin/python3\n"
    + MARKER
    + r'''
"""Exit 0 when an unattended update may run now, 1 (systemd then skips it) when it should wait, saying why."""
import subprocess
import sys

ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
METERED = {"1": "yes", "3": "guess-yes"}
USER_CLASSES = ("user", "user-early", "user-incomplete")  # logind's user session classes (systemd 256 added the others)


def run(argv):
    try:
        done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def metered():
    """NetworkManager's verdict on the connection (busctl prints "u 4"), or None when it is not running."""
    out = run(["busctl", "get-property", "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
               "org.freedesktop.NetworkManager", "Metered"])
    fields = (out or "").split()
    return METERED.get(fields[1]) if len(fields) == 2 and fields[0] == "u" else None


def user_sessions():
    """Local user sessions that are active or online, as "NAME (session ID)"."""
    found = []
    for line in (run(["loginctl", "list-sessions", "--no-legend"]) or "").splitlines():
        fields = line.split()
        if not fields:
            continue
        shown = run(["loginctl", "show-session", fields[0], "--property=Class", "--property=Remote",
                     "--property=State", "--property=Name"])
        props = dict(item.partition("=")[::2] for item in (shown or "").splitlines())
        if props.get("Class") in USER_CLASSES and props.get("Remote") == "no" and props.get("State") in ("active", "online"):
            found.append("%s (session %s)" % (props.get("Name", "?"), fields[0]))
    return found


def main(argv):
    reasons = []
    if "--skip-metered" in argv:
        verdict = metered()
        if verdict:
            reasons.append("the connection is metered (NetworkManager: %s)" % verdict)
    if "--skip-user-sessions" in argv:
        sessions = user_sessions()
        if sessions:
            reasons.append("a user session is active: " + ", ".join(sessions))
    if reasons:
        print("immutable-hosts update gate: not now, " + "; ".join(reasons), file=sys.stderr)
        return 1
    print("immutable-hosts update gate: nothing holds the update back", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''
)


def exec_condition(python: str, skip_metered: bool, skip_user_sessions: bool):
    """The ``ExecCondition=`` line for the drop-in, or None when nothing is gated."""
    flags = [FLAGS[name] for name, on in (("skip_metered", skip_metered), ("skip_user_sessions", skip_user_sessions)) if on]
    return "ExecCondition=%s %s %s" % (python, GATE_PATH, " ".join(flags)) if flags else None


def parse_exec_condition(text: str) -> dict:
    """Which gates a drop-in's ``ExecCondition=`` of this program turns on."""
    found = {"skip_metered": False, "skip_user_sessions": False}
    for line in text.splitlines():
        if line.startswith("ExecCondition=") and GATE_PATH in line:
            words = line.split()
            for name, flag in FLAGS.items():
                found[name] = found[name] or flag in words
    return found
