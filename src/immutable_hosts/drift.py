"""``immutable-hosts drift``: run the drift playbook in check+diff mode and report the fleet's drift.
``immutable-hosts drift merge DIR|FILE|URL...`` merges per-host reports into one (see ``immutable_hosts.fleet``).

The ``immutable.hosts.drift`` callback records every change a check-mode run would make, with its diff, per host
(``drift.json``); this command runs the playbook with it, shows progress per host, renders ``drift.md`` and a
self-contained ``drift.html`` from the document, prints a summary table and exits 0 (no drift), 2 (drift) or
1 (error, failed or unreachable hosts).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from immutable_hosts._parser import Parser
from immutable_hosts.files import write_durably

FORMAT = "immutable.hosts.drift/1"
CALLBACK = "immutable.hosts.drift"
EXIT_IN_SYNC, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2
CHECKOUT = Path(__file__).resolve().parents[2]
BUNDLED = Path(__file__).resolve().parent / "_collection"
STATUS_LABELS = {"in_sync": "in sync", "drifted": "drifted", "failed": "failed", "unreachable": "unreachable"}


class DriftError(Exception):
    """Something a person has to fix before the drift check can run; the message says what."""


# --- the collection and the playbook --------------------------------------------------------------------------------


def collection_in(root: Path) -> Path | None:
    candidate = root / "ansible_collections" / "immutable" / "hosts"
    return candidate if (candidate / "plugins" / "callback" / "drift.py").is_file() else None


def is_checkout(root: Path) -> bool:
    return (root / "galaxy.yml").is_file() and (root / "plugins" / "callback" / "drift.py").is_file()


def configured_collection_paths() -> list[Path]:
    """The collection paths ansible itself uses here: ``ansible-config dump`` reads ANSIBLE_CONFIG, ./ansible.cfg,
    ~/.ansible.cfg and /etc/ansible/ansible.cfg as ansible-playbook does (``collections_path`` included)."""
    try:
        done = subprocess.run(
            [ansible_tool("ansible-config"), "dump", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        settings = json.loads(done.stdout) if done.returncode == 0 else []
    except (DriftError, OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        settings = []
    for setting in settings if isinstance(settings, list) else []:
        if isinstance(setting, dict) and setting.get("name") == "COLLECTIONS_PATHS":
            value = setting.get("value") or []
            value = value.split(os.pathsep) if isinstance(value, str) else value
            return [Path(str(p)).expanduser() for p in value if p]
    return [Path("~/.ansible/collections").expanduser(), Path("/usr/share/ansible/collections")]


INSTALL_HINT = (
    "the immutable.hosts collection is not installed where ansible looks for collections (%s), and this is not a "
    "checkout of it: install it with `ansible-galaxy collection install immutable.hosts`, or from Git with "
    "`ansible-galaxy collection install git+https://github.com/immutable-hosts/immutable.hosts.git`, or point "
    "ANSIBLE_COLLECTIONS_PATH (or collections_path in ansible.cfg) at where it is"
)


@contextlib.contextmanager
def collection_path() -> Iterator[tuple[str, Path]]:
    """Yields (ANSIBLE_COLLECTIONS_PATH value, collection root). Uses a collection Ansible already finds through
    ``ANSIBLE_COLLECTIONS_PATH``; else, running from a checkout, links the checkout into a temp dir as
    ``ansible_collections/immutable/hosts``; else the collection paths ansible's configuration names."""
    configured = [Path(p).expanduser() for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    for root in configured:
        found = collection_in(root)
        if found:
            yield os.environ["ANSIBLE_COLLECTIONS_PATH"], found
            return
    if is_checkout(CHECKOUT):
        with tempfile.TemporaryDirectory(prefix="immutable-hosts-collection-") as temp:
            namespace = Path(temp) / "ansible_collections" / "immutable"
            namespace.mkdir(parents=True)
            (namespace / "hosts").symlink_to(CHECKOUT, target_is_directory=True)
            yield os.pathsep.join([temp, *map(str, configured)]), namespace / "hosts"
        return
    paths = configured_collection_paths()  # ANSIBLE_COLLECTIONS_PATH, ansible.cfg or the defaults, as ansible reads them
    for root in paths:
        found = collection_in(root)
        if found:
            yield os.pathsep.join(map(str, paths)), found
            return
    # Last, the copy the wheel carries (setup.py): pip install immutable-hosts is enough.
    found = collection_in(BUNDLED)
    if found:
        yield os.pathsep.join(map(str, [BUNDLED, *paths])), found
        return
    raise DriftError(INSTALL_HINT % ", ".join(map(str, paths)))


def ansible_tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise DriftError(f"{name} not found; install ansible-core")
    return found


def add_playbook_options(parser: argparse.ArgumentParser) -> None:
    """The ansible-playbook options a run needs on a real fleet, passed through as they are."""
    group = parser.add_argument_group("passed to ansible-playbook")
    group.add_argument("-u", "--user", help="connect as this user")
    group.add_argument("--private-key", help="the SSH private key file")
    group.add_argument("-f", "--forks", type=int, help="hosts in parallel")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more output in the log (-vvv...)")
    group.add_argument("-k", "--ask-pass", action="store_true", help="ask for the connection password")
    group.add_argument("-K", "--ask-become-pass", action="store_true", help="ask for the privilege escalation password")
    group.add_argument("--vault-password-file", action="append", help="a vault password file (repeatable)")
    group.add_argument("--vault-id", action="append", help="a vault identity (repeatable)")
    group.add_argument("--ask-vault-pass", action="store_true", help="ask for the vault password")


def playbook_options(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    for flag, value in (("--user", args.user), ("--private-key", args.private_key)):
        if value:
            argv += [flag, value]
    if args.forks is not None:
        argv += ["--forks", str(args.forks)]
    if args.verbose:
        argv.append("-" + "v" * args.verbose)
    for flag in ("ask_pass", "ask_become_pass", "ask_vault_pass"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    for value in args.vault_password_file or []:
        argv += ["--vault-password-file", value]
    for value in args.vault_id or []:
        argv += ["--vault-id", value]
    return argv


def asks(args: argparse.Namespace) -> bool:
    """ansible-playbook will prompt (its prompts need the terminal's stdin)."""
    return bool(args.ask_pass or args.ask_become_pass or args.ask_vault_pass)


def playbook_argv(args: argparse.Namespace, playbook: Path) -> list[str]:
    argv = [ansible_tool("ansible-playbook"), "-i", str(args.inventory), "--check", "--diff"]
    if args.limit:
        argv += ["--limit", args.limit]
    for extra in args.extra_vars or []:
        argv += ["--extra-vars", extra]
    argv += playbook_options(args)
    return [*argv, str(playbook)]


def callback_env(collections: str, report: Path, events: Path) -> dict[str, str]:
    enabled = [c for c in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(dict.fromkeys([*enabled, CALLBACK])),
        "IMMUTABLE_HOSTS_DRIFT_REPORT": str(report),
        "IMMUTABLE_HOSTS_DRIFT_EVENTS": str(events),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


# --- progress per host ----------------------------------------------------------------------------------------------


class HostProgress:
    """Per-host counters from the callback's event lines (tasks done, would change, failed, state)."""

    def __init__(self) -> None:
        self.hosts: dict[str, dict[str, Any]] = {}
        self.offset = 0

    def feed(self, events: Path) -> None:
        try:
            with events.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            host = self.hosts.setdefault(event["host"], {"tasks": 0, "changed": 0, "failed": 0, "state": "running", "task": ""})
            host["tasks"] += 1
            host["task"] = event.get("task", "")
            host["changed"] += 1 if event.get("changed") else 0
            if event.get("status") == "failed":
                host["failed"] += 1
            if event.get("status") == "unreachable":
                host["state"] = "unreachable"

    def table(self, title: str = "drift check") -> Any:
        from rich.table import Table

        table = Table(title=title, title_justify="left", expand=False)
        for column in ("host", "tasks", "would change", "failed", "last task"):
            table.add_column(column)
        for name in sorted(self.hosts):
            host = self.hosts[name]
            style = "red" if host["state"] == "unreachable" or host["failed"] else ("yellow" if host["changed"] else "")
            table.add_row(
                name, str(host["tasks"]), str(host["changed"]), str(host["failed"]), host["task"][:60], style=style or None
            )
        if not self.hosts:
            table.add_row("(waiting for the first results)", "", "", "", "")
        return table


def host_line(name: str, host: dict[str, Any]) -> str:
    state = "unreachable" if host["state"] == "unreachable" else ("failed" if host["failed"] else "checked")
    return f"{name}: {state}, {host['tasks']} tasks, {host['changed']} would change, {host['failed']} failed"


def run_with_progress(argv: list[str], env: dict[str, str], events: Path, log: Path, console: Any, prompts: bool = False) -> int:
    """The playbook with a live table on a terminal; elsewhere (CI, a pipe) one line per host as it finishes:
    an unreachable host at once, the others when the play ends."""
    from rich.live import Live

    progress = HostProgress()
    with log.open("w", encoding="utf-8") as out:
        # ansible-playbook's password prompts read the terminal; otherwise it never reads stdin.
        stdin = None if prompts else subprocess.DEVNULL
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=stdin)
        try:
            if console.is_terminal:
                with Live(progress.table(), console=console, refresh_per_second=4, transient=False) as live:
                    while process.poll() is None:
                        time.sleep(0.25)
                        progress.feed(events)
                        live.update(progress.table())
                    progress.feed(events)
                    live.update(progress.table())
            else:
                reported: set[str] = set()
                while True:
                    running = process.poll() is None
                    time.sleep(0.25 if running else 0)
                    progress.feed(events)
                    for name in sorted(progress.hosts):
                        host = progress.hosts[name]
                        if name not in reported and (host["state"] == "unreachable" or not running):
                            reported.add(name)
                            console.print(host_line(name, host), highlight=False)
                    if not running:
                        break
        except BaseException:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
            raise
    return process.returncode


# --- the report document --------------------------------------------------------------------------------------------


def load_report(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DriftError(f"no drift report at {path}: the playbook ended before the callback wrote it") from None
    except json.JSONDecodeError as error:
        raise DriftError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(document.get("hosts"), dict):
        raise DriftError(f"{path} is not an {FORMAT} document")
    return document


def exit_code(document: dict[str, Any], ansible_rc: int = 0) -> int:
    """1 on an Ansible error (any rc but 0, 2 failed hosts, 4 unreachable hosts), failed or unreachable hosts, or
    no host at all; else 2 when any host drifted; else 0."""
    hosts = document["hosts"]
    if ansible_rc not in (0, 2, 4) or not hosts:
        return EXIT_ERROR
    if any(host["status"] in ("failed", "unreachable") for host in hosts.values()):
        return EXIT_ERROR
    if any(host["changes"] for host in hosts.values()):
        return EXIT_DRIFT
    return EXIT_IN_SYNC


def resources(document: dict[str, Any]) -> list[str]:
    names = {change["resource"] for host in document["hosts"].values() for change in host["changes"]}
    return sorted(names)


def host_resources(host: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for change in host["changes"]:
        found.setdefault(change["resource"], []).append(change)
    return found


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def diff_lines(entry: dict[str, Any]) -> list[str]:
    """A unified diff of one diff entry: text as it is, data as indented JSON."""
    if "before" not in entry and "after" not in entry:
        return str(entry.get("prepared", "")).splitlines()
    before, after = as_text(entry.get("before", "")), as_text(entry.get("after", ""))
    lines = difflib.unified_diff(
        before.splitlines(),
        after.splitlines(),
        fromfile=str(entry.get("before_header") or "before"),
        tofile=str(entry.get("after_header") or "after"),
        lineterm="",
        n=3,
    )
    return list(lines)


def change_diff(change: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for entry in change.get("diff") or []:
        lines += diff_lines(entry)
    return lines


def ring_members(document: dict[str, Any], ring: str) -> list[str]:
    """The hosts of a rollout's ring (the report's ``ring`` of each host)."""
    return sorted(name for name, host in document["hosts"].items() if host.get("ring") == ring)


# A fleet report stays usable at 10,000 hosts: beyond LARGE_FLEET hosts the tables, the grid and the per-host detail
# list the hosts that need a look (drifted, failed, unreachable), at most LISTED_CAP of them; drift.json has them all.
LARGE_FLEET = 200
LISTED_CAP = 1000


def listed_hosts(document: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """The hosts the tables, grid and details show, sorted, and a note on those left out (empty when none is)."""
    hosts = sorted(document["hosts"].items())
    if len(hosts) <= LARGE_FLEET:
        return hosts, ""
    attention = [(name, host) for name, host in hosts if host["status"] != "in_sync"]
    in_sync = len(hosts) - len(attention)
    note = f"{in_sync} hosts in sync are not listed"
    if len(attention) > LISTED_CAP:
        note += f"; the first {LISTED_CAP} of {len(attention)} hosts that need a look are"
        attention = attention[:LISTED_CAP]
    return attention, note + " (drift.json has every host)."


def fleet_breakdown(document: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Counts by inventory group (the hosts' ``groups``) and, per resource, the hosts where it drifted."""
    groups: dict[str, dict[str, Any]] = {}
    drifted: dict[str, list[str]] = {}
    for name, host in sorted(document["hosts"].items()):
        for group in host.get("groups") or []:
            counts = groups.setdefault(
                group, {"group": group, "hosts": 0, "in_sync": 0, "drifted": 0, "failed": 0, "unreachable": 0}
            )
            counts["hosts"] += 1
            counts[host["status"]] = counts.get(host["status"], 0) + 1
        for resource in host_resources(host):
            drifted.setdefault(resource, []).append(name)
    by_resource = [
        {"resource": r, "hosts": names} for r, names in sorted(drifted.items(), key=lambda item: (-len(item[1]), item[0]))
    ]
    return [groups[g] for g in sorted(groups)], by_resource


def summary_rows(
    document: dict[str, Any], hosts: list[tuple[str, dict[str, Any]]] | None = None
) -> list[tuple[str, str, int, str]]:
    rows = []
    for name, host in hosts if hosts is not None else sorted(document["hosts"].items()):
        detail = ", ".join(sorted(host_resources(host)))
        if host["status"] == "unreachable":
            detail = (host.get("unreachable") or {}).get("msg", "")
        elif host["status"] == "failed":
            detail = "; ".join(f"{f['task']}: {f['msg']}" for f in host["failures"] if not f.get("ignored"))
        rows.append((name, STATUS_LABELS.get(host["status"], host["status"]), len(host["changes"]), detail))
    return rows


# --- Markdown --------------------------------------------------------------------------------------------------------


# The characters Markdown (CommonMark and GitHub's tables) reads as syntax inside a line; a backslash before any
# ASCII punctuation makes it literal.  (#, +, - and . only matter at the start of a line, where host data never is.)
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md_text(text: Any) -> str:
    """Host data as literal Markdown text: every syntax character escaped, line breaks folded to spaces."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split("\n"))).replace("\r", " ")


md_cell = md_text


def md_code(text: Any) -> str:
    """Inline code that no backtick inside ``text`` can close early."""
    text = " ".join(str(text).split("\n"))
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def md_fence(lines: list[str]) -> str:
    """A fence longer than any run of backticks in the block, so a diff line of three backticks stays inside it."""
    longest = max((len(run) for line in lines for run in re.findall("`+", line)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(document: dict[str, Any]) -> str:
    summary = document["summary"]
    out = [
        "# Fleet drift report",
        "",
        f"Generated {document.get('generated', '')} by ansible-core {document.get('ansible_version', '')}"
        f"{' in check mode' if document.get('check_mode') else ''}; playbooks: {', '.join(document.get('playbooks') or [])}.",
        "",
        f"**{summary['hosts']} hosts**: {summary['in_sync']} in sync, {summary['drifted']} drifted, "
        f"{summary['failed']} failed, {summary['unreachable']} unreachable; {summary['changes']} changes pending.",
        "",
    ]
    if summary.get("rings"):
        out += [
            "## Rings",
            "",
            "| ring | hosts | in sync | drifted | failed | unreachable | members |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for ring in summary["rings"]:
            members = ", ".join(ring_members(document, ring["ring"]))
            out.append(
                f"| {md_cell(ring['ring'])} | {ring['hosts']} | {ring['in_sync']} | {ring['drifted']} | {ring['failed']} "
                f"| {ring['unreachable']} | {md_cell(members)} |"
            )
        out.append("")
    listed, note = listed_hosts(document)
    groups, by_resource = fleet_breakdown(document)
    if groups:
        out += ["## Groups", "", "| group | hosts | in sync | drifted | failed | unreachable |", "|---|---:|---:|---:|---:|---:|"]
        out += [
            f"| {md_cell(g['group'])} | {g['hosts']} | {g['in_sync']} | {g['drifted']} | {g['failed']} | {g['unreachable']} |"
            for g in groups
        ]
        out.append("")
    if by_resource:
        out += ["## Resources", "", "| resource | hosts drifted | hosts |", "|---|---:|---|"]
        for entry in by_resource:
            shown = ", ".join(entry["hosts"][:10]) + (f" and {len(entry['hosts']) - 10} more" if len(entry["hosts"]) > 10 else "")
            out.append(f"| {md_cell(entry['resource'])} | {len(entry['hosts'])} | {md_cell(shown)} |")
        out.append("")
    if note:
        out += [md_text(note), ""]
    out += ["| host | status | changes | resources / reason |", "|---|---|---:|---|"]
    out += [f"| {md_cell(n)} | {md_cell(s)} | {c} | {md_cell(d)} |" for n, s, c, d in summary_rows(document, listed)]
    names = resources(document)
    if names:
        out += ["", "## Hosts &times; resources", "", "| host | " + " | ".join(md_cell(r) for r in names) + " |"]
        out.append("|---|" + "---|" * len(names))
        for name, host in listed:
            found = host_resources(host)
            cells = [("drift" if r in found else "") for r in names]
            out.append(f"| {md_cell(name)} | " + " | ".join(cells) + " |")
    for name, host in listed:
        out += ["", f"## {md_text(name)}: {STATUS_LABELS.get(host['status'], host['status'])}", ""]
        if host.get("unreachable"):
            out.append(f"Unreachable: {md_text(host['unreachable'].get('msg', ''))}")
        for failure in host["failures"]:
            ignored = " (ignored)" if failure.get("ignored") else ""
            out.append(f"- failed{ignored}: **{md_text(failure['task'])}**: {md_text(failure['msg'])}")
        for change in host["changes"]:
            out += [
                "",
                f"### {md_text(change['resource'])}",
                "",
                f"Task *{md_text(change['task'])}* ({md_code(change['action'])})",
            ]
            lines = [" ".join(line.split("\r")) for line in change_diff(change)]
            if lines:
                fence = md_fence(lines)
                out += ["", fence + "diff", *lines, fence]
        for unchecked in host.get("unchecked") or []:
            out.append(f"- not checked: **{md_text(unchecked['task'])}**: {md_text(unchecked['msg'])}")
        if host["status"] == "in_sync":
            out.append("No drift.")
    return "\n".join(out) + "\n"


# --- HTML ------------------------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#1d1f21}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#666} .cards{display:flex;gap:1em;margin:1em 0;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:7em}
.card b{display:block;font-size:1.8em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.n{text-align:right}
.in_sync{color:#1a7f37} .drifted{color:#9a6700} .failed,.unreachable{color:#cf222e}
td.cell-drift{background:#fff8c5;text-align:center} td.cell-drift a{color:#9a6700;font-weight:600;text-decoration:none}
td.cell-ok{color:#aaa;text-align:center}
td.cell-unknown{background:#ffebe9;color:#cf222e;text-align:center;font-weight:600}
details{border:1px solid #ddd;border-radius:6px;margin:.5em 0;padding:.3em .8em} summary{cursor:pointer;font-weight:600}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font:12px/1.4 ui-monospace,monospace}
.add{color:#1a7f37} .del{color:#cf222e} .hunk{color:#8250df} code{font:12px ui-monospace,monospace}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def anchor(*parts: str) -> str:
    text = "-".join(parts)
    return "d-" + "".join(ch if ch.isalnum() else "-" for ch in text)


def html_diff(lines: list[str]) -> str:
    rendered = []
    for line in lines:
        css = ""
        if line.startswith(("+++", "---")):
            css = "hunk"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        elif line.startswith("@@"):
            css = "hunk"
        rendered.append(f'<span class="{css}">{esc(line)}</span>' if css else esc(line))
    return "<pre>" + "\n".join(rendered) + "</pre>"


def html_head(title: str, extra_css: str = "") -> list[str]:
    """The start of a fleet page (the drift report, ``immutable-hosts status --html``): its style and its title."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}{extra_css}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]


def render_html(document: dict[str, Any]) -> str:
    summary = document["summary"]
    names = resources(document)
    out = html_head("Fleet drift report")
    out += [
        f'<p class="meta">Generated {esc(document.get("generated", ""))} by ansible-core '
        f"{esc(document.get('ansible_version', ''))}{' in check mode' if document.get('check_mode') else ''}; "
        f"playbooks: {esc(', '.join(document.get('playbooks') or []))}</p>",
        '<section id="overview"><div class="cards">',
    ]
    for key, label in (("hosts", "hosts"), ("in_sync", "in sync"), ("drifted", "drifted"), ("failed", "failed")):
        out.append(f'<div class="card {esc(key)}"><b>{summary[key]}</b>{esc(label)}</div>')
    out.append(f'<div class="card unreachable"><b>{summary["unreachable"]}</b>unreachable</div>')
    out.append(f'<div class="card"><b>{summary["changes"]}</b>changes pending</div>')
    unchecked = sum(len(host.get("unchecked") or []) for host in document["hosts"].values())
    out.append(f'<div class="card unchecked"><b>{unchecked}</b>tasks not checked</div></div>')
    if summary.get("rings"):
        out.append(
            '<h2>Rings</h2><table id="rings"><thead><tr><th>ring</th><th>hosts</th><th>in sync</th><th>drifted</th>'
            "<th>failed</th><th>unreachable</th><th>members</th></tr></thead><tbody>"
        )
        for ring in summary["rings"]:
            members = ", ".join(ring_members(document, ring["ring"]))
            out.append(
                f'<tr data-ring="{esc(ring["ring"])}"><td>{esc(ring["ring"])}</td><td class="n">{ring["hosts"]}</td>'
                f'<td class="n">{ring["in_sync"]}</td><td class="n">{ring["drifted"]}</td><td class="n">{ring["failed"]}</td>'
                f'<td class="n">{ring["unreachable"]}</td><td>{esc(members)}</td></tr>'
            )
        out.append("</tbody></table>")
    listed, note = listed_hosts(document)
    groups, by_resource = fleet_breakdown(document)
    if groups:
        out.append(
            '<h2>Groups</h2><table id="groups"><thead><tr><th>group</th><th>hosts</th><th>in sync</th><th>drifted</th>'
            "<th>failed</th><th>unreachable</th></tr></thead><tbody>"
        )
        for g in groups:
            out.append(
                f'<tr data-group="{esc(g["group"])}"><td>{esc(g["group"])}</td><td class="n">{g["hosts"]}</td>'
                f'<td class="n">{g["in_sync"]}</td><td class="n">{g["drifted"]}</td><td class="n">{g["failed"]}</td>'
                f'<td class="n">{g["unreachable"]}</td></tr>'
            )
        out.append("</tbody></table>")
    if by_resource:
        out.append(
            '<h2>Resources</h2><table id="resources"><thead><tr><th>resource</th><th>hosts drifted</th><th>hosts</th></tr>'
            "</thead><tbody>"
        )
        shown_hosts = {name for name, _host in listed}
        for entry in by_resource:
            links = ", ".join(f'<a href="#{anchor(n)}">{esc(n)}</a>' if n in shown_hosts else esc(n) for n in entry["hosts"][:10])
            more = f" and {len(entry['hosts']) - 10} more" if len(entry["hosts"]) > 10 else ""
            out.append(
                f'<tr data-resource-row="{esc(entry["resource"])}"><td>{esc(entry["resource"])}</td>'
                f'<td class="n">{len(entry["hosts"])}</td><td>{links}{more}</td></tr>'
            )
        out.append("</tbody></table>")
    if note:
        out.append(f'<p class="meta" id="listed">{esc(note)}</p>')
    out.append(
        '<table id="fleet"><thead><tr><th>host</th><th>status</th><th>changes</th><th>resources / reason</th></tr></thead><tbody>'
    )
    for name, status, count, detail in summary_rows(document, listed):
        host_status = document["hosts"][name]["status"]
        out.append(
            f'<tr data-host="{esc(name)}"><td><a href="#{anchor(name)}">{esc(name)}</a></td>'
            f'<td class="{esc(host_status)}">{esc(status)}</td><td class="n">{count}</td><td>{esc(detail)}</td></tr>'
        )
    out.append("</tbody></table></section>")
    out.append("<h2>Hosts &times; resources</h2>")
    if names:
        out.append(
            '<table id="matrix"><thead><tr><th>host</th>' + "".join(f"<th>{esc(r)}</th>" for r in names) + "</tr></thead><tbody>"
        )
        for name, host in listed:
            found = host_resources(host)
            cells = []
            for resource in names:
                if resource in found:
                    cells.append(
                        f'<td class="cell-drift" data-resource="{esc(resource)}">'
                        f'<a href="#{anchor(name, resource)}">drift ({len(found[resource])})</a></td>'
                    )
                elif host["status"] in ("failed", "unreachable"):
                    # Not known: the host was not (fully) checked, which is not "no drift".
                    why = STATUS_LABELS.get(host["status"], host["status"])
                    cells.append(f'<td class="cell-unknown" title="not checked: {esc(why)}">?</td>')
                else:
                    cells.append('<td class="cell-ok">·</td>')
            out.append(f'<tr><th class="{esc(host["status"])}">{esc(name)}</th>{"".join(cells)}</tr>')
        out.append("</tbody></table>")
    else:
        out.append("<p>No resource drifted.</p>")
    out.append('<section id="hosts">')
    for name, host in listed:
        label = STATUS_LABELS.get(host["status"], host["status"])
        out.append(f'<h2 id="{anchor(name)}">{esc(name)} <span class="{esc(host["status"])}">{esc(label)}</span></h2>')
        if host.get("unreachable"):
            out.append(f'<p class="unreachable">Unreachable: {esc(host["unreachable"].get("msg", ""))}</p>')
        for failure in host["failures"]:
            ignored = " (ignored)" if failure.get("ignored") else ""
            out.append(f'<p class="failed">Failed{ignored}: <b>{esc(failure["task"])}</b>: {esc(failure["msg"])}</p>')
        for resource, changes in host_resources(host).items():
            for change in changes:
                out.append(
                    f'<details id="{anchor(name, resource)}" class="change"><summary>{esc(resource)}</summary>'
                    f"<p>Task <b>{esc(change['task'])}</b> <code>{esc(change['action'])}</code>"
                    f"{' at ' + esc(change['path']) if change.get('path') else ''}</p>"
                )
                lines = change_diff(change)
                out.append(html_diff(lines) if lines else "<p>(no diff returned)</p>")
                out.append("</details>")
        for unchecked in host.get("unchecked") or []:
            out.append(f"<p>Not checked: <b>{esc(unchecked['task'])}</b>: {esc(unchecked['msg'])}</p>")
        if host["status"] == "in_sync":
            out.append('<p class="in_sync">No drift.</p>')
    out.append("</section></body></html>")
    return "\n".join(out) + "\n"


def write_private(path: Path, text: str) -> None:
    """A report, for its owner only: diffs carry values from the hosts."""
    write_durably(path, text, 0o600)


def write_reports(document: dict[str, Any], report_dir: Path) -> dict[str, Path]:
    paths = {"json": report_dir / "drift.json", "md": report_dir / "drift.md", "html": report_dir / "drift.html"}
    if not paths["json"].exists():
        write_private(paths["json"], json.dumps(document, indent=2) + "\n")
    write_private(paths["md"], render_markdown(document))
    write_private(paths["html"], render_html(document))
    return paths


def summary_table(document: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="Fleet drift", title_justify="left")
    for column in ("host", "status", "changes", "resources / reason"):
        table.add_column(column, overflow="fold")
    styles = {"in sync": "green", "drifted": "yellow", "failed": "red", "unreachable": "red"}
    for name, status, count, detail in summary_rows(document):
        table.add_row(name, f"[{styles.get(status, '')}]{status}[/]" if status in styles else status, str(count), detail)
    return table


# --- the command ---------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    out = Console()
    inventory = Path(args.inventory)
    if not inventory.exists() and "," not in args.inventory:
        err.print(f"[red]drift: inventory {inventory} does not exist[/]")
        return EXIT_ERROR
    report_dir = Path(args.report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "drift.json"
    report.unlink(missing_ok=True)
    try:
        with collection_path() as (collections, collection):
            playbook = Path(args.playbook) if args.playbook else collection / "playbooks" / "drift.yml"
            if not playbook.is_file():
                raise DriftError(f"playbook {playbook} not found (give one with --playbook)")
            argv = playbook_argv(args, playbook.resolve())
            log = report_dir / "ansible.log"
            with tempfile.TemporaryDirectory(prefix="immutable-hosts-drift-") as temp:
                events = Path(temp) / "events.jsonl"
                rc = run_with_progress(argv, callback_env(collections, report, events), events, log, err, asks(args))
        document = load_report(report)
    except DriftError as error:
        err.print(f"[red]drift: {error}[/]")
        log = report_dir / "ansible.log"
        if log.exists():
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
            err.print("\n".join(tail), markup=False, highlight=False)
        return EXIT_ERROR
    paths = write_reports(document, report_dir)
    out.print(summary_table(document))
    code = exit_code(document, rc)
    if rc not in (0, 2, 4):
        err.print(f"[red]drift: ansible-playbook exited {rc}; see {report_dir / 'ansible.log'}[/]")
    elif not document["hosts"]:
        err.print("[red]drift: no host matched the inventory and limit[/]")
    verdict = {EXIT_IN_SYNC: "no drift", EXIT_DRIFT: "drift found", EXIT_ERROR: "errors or unreachable hosts"}[code]
    out.print(f"{verdict}. Reports: {paths['html']}  {paths['md']}  {paths['json']}  (log: {report_dir / 'ansible.log'})")
    return code


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drift",
        help="run the drift playbook in check+diff mode and report drift per host",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--inventory", help="inventory file or directory (required unless merging)")
    parser.add_argument("-l", "--limit", help="hosts or groups to check (ansible-playbook --limit)")
    parser.add_argument(
        "--report-dir", default="drift-report", help="where drift.json, drift.md and drift.html go (default: %(default)s)"
    )
    parser.add_argument(
        "--playbook", help="the playbook to run in check+diff mode (default: the collection's playbooks/drift.yml)"
    )
    parser.add_argument("-e", "--extra-vars", action="append", help="passed to ansible-playbook --extra-vars (repeatable)")
    add_playbook_options(parser)
    parser.set_defaults(
        func=lambda args: run(args) if args.inventory else parser.error("the following arguments are required: -i/--inventory")
    )
    from immutable_hosts import fleet

    fleet.register(parser)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="immutable-hosts")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["drift", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
