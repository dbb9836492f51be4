"""``immutable-hosts status -i INVENTORY [-l LIMIT]``: each host's deployment state, read over SSH, many hosts in
parallel from one process, without running Ansible on the hosts.

Per host: the backend (rpm-ostree, bootc or plain ostree), the booted and the staged deployment (image or ref, with
its digest or commit), whether a reboot is pending and why, the busy rpm-ostree transaction, the architecture, the
layered package count, the system Flatpak apps and runtimes, and the Quadlet units of the system and of each user.
One SSH connection and one command per host: a fixed shell script, sent on stdin, prints the raw outputs
(``rpm-ostree status --json``, ``bootc status --format=json`` or ``ostree admin status``, the boot entries,
``flatpak list``, the Quadlet unit files); the collection's own parsers (those of ``immutable.hosts.ostree_facts``)
read them here. It changes nothing on the hosts.

Hosts and their connection settings come from ``ansible-inventory --list`` (see ``immutable_hosts.remote`` for what
is honoured); host keys are checked against known_hosts, and an unknown key is refused unless
``--accept-new-host-keys`` (or the inventory's ``StrictHostKeyChecking=accept-new``). Reading as root shows
everything; as another user, ``bootc status`` and other users' Quadlet units need ``--become`` (``sudo -n``).

Output: a table, or ``--json`` (``immutable.hosts.status/1``: one object per host, an unreachable one with its
error), and ``--html FILE`` (the drift report's style). Exit codes: 0 every host read, 3 some host unreachable or not
read (the others are still reported), 1 an error (a usage error, an inventory ansible-inventory cannot read, no host).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from immutable_hosts import drift, module_utils, remote
from immutable_hosts.files import write_durably

FORMAT = "immutable.hosts.status/1"
EXIT_OK, EXIT_ERROR, EXIT_NOT_READ = 0, 1, 3
OK, UNREACHABLE, FAILED = "ok", "unreachable", "failed"
STATUS_LABELS = {OK: "ok", UNREACHABLE: "unreachable", FAILED: "failed"}

# Connection and login failures are what Ansible calls unreachable; a host that answered but could not be read failed.
UNREACHABLE_KINDS = ("unreachable", "host-key", "auth")

RPM_OSTREE_TIMER = "/etc/systemd/system/timers.target.wants/rpm-ostreed-automatic.timer"
BOOTC_TIMER = "/etc/systemd/system/timers.target.wants/bootc-fetch-apply-updates.timer"
FOR_USERS_QUADLETS = "/etc/containers/systemd/users"

# The one command each host runs: POSIX sh, read from stdin, its one argument the run's marker (random hex), so no host
# data is ever part of a command line. Each part's stdout and stderr are framed by "MARKER begin NAME" and
# "MARKER end RC" lines on both streams; no part reads stdin, which holds the rest of the script. Reads only.
SCRIPT = r"""
m=$1
part() {
    _name=$1
    shift
    printf '%s begin %s\n' "$m" "$_name"
    printf '%s begin %s\n' "$m" "$_name" >&2
    "$@" </dev/null
    _rc=$?
    printf '\n%s end %d\n' "$m" "$_rc"
    printf '\n%s end %d\n' "$m" "$_rc" >&2
    return 0
}
have() { command -v "$1" >/dev/null 2>&1; }
tools() { for _t in rpm-ostree bootc ostree flatpak; do if have "$_t"; then echo "$_t"; fi; done; }
present() { for _p in "$@"; do if [ -e "$_p" ]; then echo "$_p"; fi; done; }
boot_links() {
    for _l in /ostree/boot.?/*/*/*; do
        if [ -L "$_l" ]; then printf '%s\t%s\n' "$_l" "$(readlink -f "$_l")"; fi
    done
}
units() { find "$1/" \( -type f -o -type l \) -name '*.*' -print; }

part machine uname -m
part tools tools
part present present /run/ostree-booted /run/ostree/staged-deployment \
    /etc/systemd/system/timers.target.wants/rpm-ostreed-automatic.timer \
    /etc/systemd/system/timers.target.wants/bootc-fetch-apply-updates.timer
if [ -e /run/ostree-booted ]; then
    if have rpm-ostree; then
        part rpm-ostree rpm-ostree status --json
        if [ -e /etc/rpm-ostreed.conf ]; then part file:/etc/rpm-ostreed.conf cat /etc/rpm-ostreed.conf; fi
        if [ -e /run/ostree/staged-deployment ]; then part rpm-ostree-kargs rpm-ostree kargs; fi
    elif have bootc; then
        part bootc bootc status --format=json
    elif have ostree; then
        part ostree-json ostree admin status --json
        if [ "$_rc" != 0 ]; then part ostree-skip-signatures ostree admin status --skip-signatures; fi
        if [ "$_rc" != 0 ]; then part ostree-text ostree admin status; fi
        for _f in /ostree/deploy/*/deploy/*.origin; do
            if [ -f "$_f" ]; then part "file:$_f" cat "$_f"; fi
        done
    fi
    for _f in /boot/loader/entries/*.conf /boot/efi/loader/entries/*.conf /efi/loader/entries/*.conf; do
        if [ -f "$_f" ]; then part "bls:$_f" cat "$_f"; fi
    done
    part boot-links boot_links
fi
if have flatpak; then
    part flatpak flatpak list --system --columns=application:f,branch:f,arch:f,origin:f,ref:f,active:f,runtime:f,installation:f,options:f
fi
if [ -d /etc/containers/systemd ]; then part quadlets:system units /etc/containers/systemd; fi
while IFS=: read -r _user _pw _uid _gid _gecos _home _shell || [ -n "$_user" ]; do
    if [ -n "$_home" ] && [ -d "$_home/.config/containers/systemd" ]; then
        part "quadlets:user:$_user" units "$_home/.config/containers/systemd"
    fi
done < /etc/passwd
"""
FLATPAK_COLUMNS_ARG = "--columns=application:f,branch:f,arch:f,origin:f,ref:f,active:f,runtime:f,installation:f,options:f"


def remote_command(marker: str, become: bool) -> str:
    """What each host's login shell runs (any shell: words only); the script comes on stdin."""
    command = f"env LC_ALL=C LANG=C sh -s {marker}"
    return f"sudo -n -- {command}" if become else command


class ReadError(Exception):
    """A host's output that does not say its state; the message says what is wrong."""


# --- the script's output ---------------------------------------------------------------------------------------------


def parse_parts(stdout: str, stderr: str, marker: str) -> dict[str, dict[str, Any]]:
    """{name: {"out", "err", "rc"}} of the script's parts."""
    pattern = re.compile(rf"^{re.escape(marker)} begin ([^\n]+)\n(.*?)\n?^{re.escape(marker)} end (\d+)$", re.M | re.S)
    parts: dict[str, dict[str, Any]] = {}
    for match in pattern.finditer(stdout):
        parts[match.group(1)] = {"out": match.group(2), "err": "", "rc": int(match.group(3))}
    for match in pattern.finditer(stderr):
        if match.group(1) in parts:
            parts[match.group(1)]["err"] = match.group(2)
    return parts


def _lines(part: dict[str, Any] | None) -> list[str]:
    return [line for line in (part or {}).get("out", "").splitlines() if line]


def _output(parts: dict[str, dict[str, Any]], name: str, what: str) -> str:
    part = parts.get(name)
    if part is None:
        raise ReadError(f"{what}: no output")
    if part["rc"] != 0:
        raise ReadError(f"{what} failed with exit code {part['rc']}: {part['err'].strip() or part['out'].strip()}")
    return part["out"]


def boot_kargs(parts: dict[str, dict[str, Any]]) -> dict:
    """Kernel arguments by (checksum, serial) from the boot entries and the links they boot (as the facts module's
    reader does on the host: ``ostree._reader.boot_kargs``); empty when an entry was unreadable."""
    admin = module_utils.load("ostree._admin")
    links = dict(line.split("\t", 1) for line in _lines(parts.get("boot-links")) if "\t" in line)
    result: dict = {}
    for name, part in parts.items():
        if not name.startswith("bls:"):
            continue
        if part["rc"] != 0:
            return {}
        entry = admin.parse_bls_entry(part["out"])
        digest = admin.composefs_digest(entry["kargs"])
        if digest:
            result[("composefs", digest)] = entry["kargs"]
            continue
        boot_path = admin.ostree_boot_path(entry["kargs"])
        target = admin.deployment_from_link(links.get(boot_path, "")) if boot_path else None
        if target:
            result[(target[1], target[2])] = entry["kargs"]
    return result


def ostree_deployments(parts: dict[str, dict[str, Any]]) -> list:
    """``ostree admin status`` (JSON, else --skip-signatures, else text, as the host's ostree supports), with the
    origin files filling in what it does not name (``ostree._facts.with_origin_file``)."""
    admin = module_utils.load("ostree._admin")
    facts = module_utils.load("ostree._facts")
    deployments = None
    for name, parse in (
        ("ostree-json", admin.parse_admin_status_json),
        ("ostree-skip-signatures", admin.parse_admin_status),
        ("ostree-text", admin.parse_admin_status),
    ):
        part = parts.get(name)
        if part is None or (part["rc"] != 0 and "Unknown option" in part["err"]):
            continue  # an older ostree: the script asked the next form
        deployments = parse(_output(parts, name, "ostree admin status"))
        break
    if deployments is None:
        raise ReadError("ostree admin status is not available on this host")
    files = RecordedFiles(parts)
    for deployment in deployments:
        if not deployment["origin"]:
            facts.with_origin_file(files, deployment)
    return deployments


class RecordedFiles:
    """The files the script printed, read as the facts module's host reader reads files (``read_text``)."""

    def __init__(self, parts: dict[str, dict[str, Any]]) -> None:
        self.parts = parts

    def read_text(self, path: str) -> str | None:
        part = self.parts.get("file:" + path)
        return part["out"] if part is not None and part["rc"] == 0 else None


def ostree_facts(parts: dict[str, dict[str, Any]]) -> dict:
    """``ansible_facts.ostree`` as ``immutable.hosts.ostree_facts`` computes it (``ostree._facts._gather``), from the
    outputs of one script run instead of one command at a time (hardware and health are not read)."""
    facts = module_utils.load("ostree._facts")
    admin = module_utils.load("ostree._admin")
    machine = _output(parts, "machine", "uname -m").strip()
    present = set(_lines(parts.get("present")))
    tools = set(_lines(parts.get("tools")))
    if "/run/ostree-booted" not in present:
        return facts.empty_facts(machine)
    kargs = boot_kargs(parts)
    if "rpm-ostree" in tools:
        rpm_ostree = module_utils.load("ostree._status")
        status = rpm_ostree.parse_status(_output(parts, "rpm-ostree", "rpm-ostree status --json"))
        policy = admin.parse_rpm_ostreed_conf(RecordedFiles(parts).read_text("/etc/rpm-ostreed.conf"))
        policy["timer_enabled"] = RPM_OSTREE_TIMER in present
        staged_kargs = None
        if facts.needs_staged_kargs(status, kargs) and "rpm-ostree-kargs" in parts:
            staged_kargs = admin.split_kargs(_output(parts, "rpm-ostree-kargs", "rpm-ostree kargs"))
        return facts.from_rpm_ostree(status, kargs, policy, machine, staged_kargs=staged_kargs)
    if "bootc" in tools:
        bootc = module_utils.load("ostree._bootc")
        status = bootc.parse_status(_output(parts, "bootc", "bootc status --format=json"))
        return facts.from_bootc(status, kargs, {"timer_enabled": BOOTC_TIMER in present}, machine)
    if "ostree" in tools:
        return facts.from_ostree(ostree_deployments(parts), kargs, machine)
    return facts.empty_facts(machine, is_ostree=True, backend="none")


def flatpak_counts(parts: dict[str, dict[str, Any]]) -> dict[str, int] | None:
    """Apps and runtimes of the system installation; None without flatpak."""
    if "flatpak" not in parts:
        return None
    apps = module_utils.load("flatpak._apps")
    refs = apps.parse_list(_output(parts, "flatpak", "flatpak list --system"))
    return {
        "apps": sum(1 for ref in refs if ref["kind"] == "app"),
        "runtimes": sum(1 for ref in refs if ref["kind"] == "runtime"),
    }


def quadlet_counts(parts: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Quadlet unit files (``.container``, ``.pod``...; not drop-ins): the system's (``/etc/containers/systemd``), those
    the administrator keeps there for users (its ``users/``, for every user or one uid), and each user's own
    (``~/.config/containers/systemd``, by user name); with warnings for directories that could not be read."""
    kinds = tuple("." + kind for kind in module_utils.load("podman._quadlet_keys").KINDS)
    counts: dict[str, Any] = {"system": 0, "for_users": 0, "users": {}}
    warnings = []
    for name, part in sorted(parts.items()):
        if not name.startswith("quadlets:"):
            continue
        if part["rc"] != 0:
            warnings.append(f"Quadlet units partly unreadable: {part['err'].strip() or 'exit code %d' % part['rc']}")
        units = [line for line in part["out"].splitlines() if line.endswith(kinds)]
        if name == "quadlets:system":
            users = [u for u in units if u.startswith(FOR_USERS_QUADLETS + "/")]
            counts["for_users"] = len(users)
            counts["system"] = len(units) - len(users)
        else:
            counts["users"][name.split(":", 2)[2]] = len(units)
    return counts, warnings


# --- one host's report -----------------------------------------------------------------------------------------------


def deployment_summary(deployment: dict | None) -> dict[str, Any] | None:
    """What the table and the JSON show of a deployment: what it follows, its digest (an image) or commit, version."""
    if not deployment:
        return None
    parsed = deployment.get("origin_parsed") or {}
    requested = deployment.get("requested_packages")
    return {
        "origin": deployment.get("origin"),
        "kind": {"container": "image", "refspec": "ref", "checksum": "commit"}.get(parsed.get("kind"), parsed.get("kind")),
        "digest": deployment.get("container_image_reference_digest"),
        "checksum": deployment.get("checksum"),
        "version": deployment.get("version"),
        "timestamp": deployment.get("timestamp"),
        "layered_packages": len(requested) if isinstance(requested, list) else None,
        "pinned": bool(deployment.get("pinned")),
    }


def empty_report(target: remote.Target | None) -> dict[str, Any]:
    return {
        "status": FAILED,
        "error": None,
        "error_kind": None,
        "address": target.address if target else None,
        "port": target.port if target else None,
        "user": target.user if target else None,
        "groups": [],
        "backend": None,
        "architecture": None,
        "booted": None,
        "staged": None,
        "pending": None,
        "reboot_required": None,
        "reboot_reasons": [],
        "staged_locked": None,
        "staged_locked_reasons": [],
        "transaction": None,
        "layered_packages": None,
        "flatpaks": None,
        "quadlets": None,
        "warnings": [],
        "timings": {},
    }


def report_from_parts(report: dict[str, Any], parts: dict[str, dict[str, Any]], as_root: bool) -> dict[str, Any]:
    """The host's report filled in from its parts; ReadError when the deployment state cannot be read."""
    facts = ostree_facts(parts)
    booted = deployment_summary(facts["booted"])
    report.update(
        status=OK,
        backend=facts["backend"],
        architecture=facts["architecture"],
        booted=booted,
        staged=deployment_summary(facts["staged"]),
        pending=deployment_summary(facts["pending"]),
        reboot_required=facts["reboot_required"],
        reboot_reasons=facts["reboot_reasons"],
        staged_locked=facts["staged_locked"],
        staged_locked_reasons=facts["staged_locked_reasons"],
        transaction=facts["transaction"],
        layered_packages=booted["layered_packages"] if booted else None,
    )
    try:
        report["flatpaks"] = flatpak_counts(parts)
    except (ReadError, ValueError) as error:
        report["warnings"].append(f"Flatpak apps not read: {error}")
    report["quadlets"], warnings = quadlet_counts(parts)
    report["warnings"] += warnings
    if not as_root:
        report["warnings"].append(f"read as {report['user']}, not root: other users' Quadlet units may be missing (--become)")
    return report


def host_report(result: remote.Result, marker: str, as_root: bool) -> dict[str, Any]:
    report = empty_report(result.target)
    report["timings"] = dict(result.timings)
    if result.added_host_key:
        report["warnings"].append(f"new host key added to {result.added_host_key}")
    if result.error:
        kind = result.kind or "command"
        report.update(status=UNREACHABLE if kind in UNREACHABLE_KINDS else FAILED, error=result.error, error_kind=kind)
        return report
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    parts = parse_parts(stdout, stderr, marker)
    if "machine" not in parts:
        detail = (stderr.strip() or stdout.strip() or f"exit code {result.rc}").splitlines()[-1][:500]
        report.update(error=f"the status script did not run: {detail}", error_kind="command")
        return report
    try:
        return report_from_parts(report, parts, as_root)
    except (ReadError, ValueError) as error:
        report.update(status=FAILED, error=str(error), error_kind="read")
        return report


def refused_report(message: str) -> dict[str, Any]:
    report = empty_report(None)
    report.update(error=message, error_kind="inventory")
    return report


# --- the fleet -------------------------------------------------------------------------------------------------------


def summarize(hosts: dict[str, dict[str, Any]]) -> dict[str, int]:
    reports = list(hosts.values())
    return {
        "hosts": len(reports),
        "ok": sum(1 for r in reports if r["status"] == OK),
        "reboot_required": sum(1 for r in reports if r["reboot_required"]),
        "busy": sum(1 for r in reports if r["transaction"]),
        "unreachable": sum(1 for r in reports if r["status"] == UNREACHABLE),
        "failed": sum(1 for r in reports if r["status"] == FAILED),
    }


def exit_code(document: dict[str, Any]) -> int:
    if not document["hosts"]:
        return EXIT_ERROR
    return EXIT_OK if all(host["status"] == OK for host in document["hosts"].values()) else EXIT_NOT_READ


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the inventory ---------------------------------------------------------------------------------------------------


def inventory_argv(args: argparse.Namespace) -> list[str]:
    argv = [drift.ansible_tool("ansible-inventory"), "-i", str(args.inventory), "--list"]
    return argv + (["--limit", args.limit] if args.limit else [])


def inventory_env() -> dict[str, str]:
    # ansible-core refuses a locale that is not UTF-8: C.UTF-8 is the C locale it accepts.
    return {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}


def inventory_hosts(document: Any) -> dict[str, dict[str, Any]]:
    """{host: {"vars": hostvars, "groups": [...]}} of ``ansible-inventory --list`` output."""
    if not isinstance(document, dict):
        raise drift.DriftError("ansible-inventory --list printed no inventory document")
    hostvars = (document.get("_meta") or {}).get("hostvars") or {}
    hosts: dict[str, dict[str, Any]] = {name: {"vars": hostvars[name], "groups": []} for name in hostvars}
    for group, body in document.items():
        if group == "_meta" or not isinstance(body, dict):
            continue
        for name in body.get("hosts") or []:
            entry = hosts.setdefault(name, {"vars": hostvars.get(name) or {}, "groups": []})
            if group not in ("all", "ungrouped"):
                entry["groups"].append(group)
    return {name: hosts[name] for name in sorted(hosts)}


def read_inventory(process: subprocess.Popen) -> dict[str, dict[str, Any]]:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise drift.DriftError(f"ansible-inventory exited {process.returncode}: {stderr.strip()[-2000:]}")
    try:
        return inventory_hosts(json.loads(stdout))
    except json.JSONDecodeError as error:
        raise drift.DriftError(f"ansible-inventory printed no JSON: {error}") from None


def plan_targets(
    hosts: dict[str, dict[str, Any]], defaults: remote.Defaults
) -> tuple[list[remote.Target], dict[str, str], list[str]]:
    """The hosts to connect to, those refused (host: why) and the ssh options ignored (each once, in order)."""
    targets, refused, ignored = [], {}, []
    for name, host in hosts.items():
        try:
            target, skipped = remote.target_of(name, host["vars"], defaults)
        except remote.TargetError as error:
            refused[name] = str(error)
            continue
        targets.append(target)
        ignored += [option for option in skipped if option not in ignored]
    return targets, refused, ignored


# --- output ----------------------------------------------------------------------------------------------------------


def short_origin(deployment: dict[str, Any]) -> str:
    """An image without its transport (``quay.io/fedora/fedora-silverblue:41``), a ref as it is."""
    origin = str(deployment.get("origin") or "?")
    if deployment.get("kind") == "image":
        if "docker://" in origin:
            return origin.split("docker://", 1)[1]
        if origin.startswith("ostree-"):
            return origin.split(":", 1)[1]
    return origin


def deployment_cell(deployment: dict[str, Any] | None) -> str:
    """``quay.io/fedora/fedora-silverblue:41 41.20241104.0 @sha256:0123456789ab`` or ``fedora:fedora/41/... (a194fee69ffb)``."""
    if not deployment:
        return ""
    words = [short_origin(deployment)]
    if deployment.get("version"):
        words.append(str(deployment["version"]))
    if deployment.get("digest"):
        words.append("@" + str(deployment["digest"])[:19])
    elif deployment.get("checksum"):
        words.append(f"({str(deployment['checksum'])[:12]})")
    return " ".join(words)


def reboot_cell(report: dict[str, Any]) -> str:
    if report["status"] != OK:
        return ""
    if report["reboot_required"]:
        return "yes: " + ", ".join(report["reboot_reasons"])
    if report["staged_locked"]:
        return "no (staged, locked: " + ", ".join(report["staged_locked_reasons"]) + ")"
    return "no"


def layered_cell(report: dict[str, Any]) -> str:
    booted = report["layered_packages"]
    pending = (report["pending"] or {}).get("layered_packages")
    if booted is None:
        return ""
    return f"{booted} -> {pending}" if pending is not None and pending != booted else str(booted)


def flatpak_cell(report: dict[str, Any]) -> str:
    counts = report["flatpaks"]
    return f"{counts['apps']} / {counts['runtimes']}" if counts else ""


def quadlet_cell(report: dict[str, Any]) -> str:
    counts = report["quadlets"]
    if not counts:
        return ""
    users = counts["for_users"] + sum(counts["users"].values())
    return f"{counts['system']} / {users}"


COLUMNS = ("host", "status", "backend", "arch", "booted", "staged", "reboot pending", "busy", "layered", "flatpaks", "quadlets")
CAPTION = "layered: packages of the booted deployment (-> of the next boot); flatpaks: apps / runtimes; quadlets: system / users"


def table_rows(document: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for name, report in document["hosts"].items():
        if report["status"] != OK:
            rows.append((name, STATUS_LABELS[report["status"]], "", "", report["error"] or "", "", "", "", "", "", ""))
            continue
        busy = (report["transaction"] or {}).get("method") or ""
        rows.append(
            (
                name,
                "ok",
                report["backend"] or "",
                report["architecture"] or "",
                deployment_cell(report["booted"]),
                deployment_cell(report["staged"]),
                reboot_cell(report),
                busy,
                layered_cell(report),
                flatpak_cell(report),
                quadlet_cell(report),
            )
        )
    return rows


def summary_table(document: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Fleet status", title_justify="left", caption=CAPTION, caption_justify="left")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in table_rows(document):
        style = "red" if row[1] != "ok" else ("yellow" if row[6].startswith("yes") else None)
        table.add_row(*(Text(cell) for cell in row), style=style)  # what hosts report is text, never markup
    return table


STATUS_CSS = ".ok{color:#1a7f37} .reboot{color:#9a6700}"


def render_html(document: dict[str, Any]) -> str:
    """A self-contained page in the drift report's style: counts, then one row per host."""
    esc = drift.esc
    summary = document["summary"]
    out = drift.html_head("Fleet status", extra_css=STATUS_CSS)
    out.append(
        f'<p class="meta">Read {esc(document["generated"])} from inventory {esc(document["inventory"])}'
        f"{' (limit ' + esc(document['limit']) + ')' if document.get('limit') else ''}</p>"
    )
    out.append('<section id="overview"><div class="cards">')
    for key, label, css in (
        ("hosts", "hosts", ""),
        ("ok", "read", "ok"),
        ("reboot_required", "reboot pending", "reboot"),
        ("busy", "busy", "reboot"),
        ("unreachable", "unreachable", "unreachable"),
        ("failed", "not read", "failed"),
    ):
        out.append(f'<div class="card {css}" data-count="{key}"><b>{summary[key]}</b>{esc(label)}</div>')
    out.append("</div>")
    out.append('<table id="fleet"><thead><tr>' + "".join(f"<th>{esc(c)}</th>" for c in COLUMNS) + "</tr></thead><tbody>")
    for row in table_rows(document):
        name, label = row[0], row[1]
        report = document["hosts"][name]
        css = "ok" if label == "ok" else report["status"]
        cells = [f"<td>{esc(name)}</td>", f'<td class="{esc(css)}">{esc(label)}</td>']
        for index, value in enumerate(row[2:], start=2):
            cell_css = ' class="reboot"' if index == 6 and value.startswith("yes") else ""
            cells.append(f"<td{cell_css}>{esc(value)}</td>")
        out.append(f'<tr data-host="{esc(name)}" data-status="{esc(report["status"])}">{"".join(cells)}</tr>')
    out.append(f'</tbody></table><p class="meta">{esc(CAPTION)}</p></section>')
    warned = [(name, report["warnings"]) for name, report in document["hosts"].items() if report["warnings"]]
    if warned:
        out.append('<h2>Notes</h2><ul id="notes">')
        out += [f"<li><b>{esc(name)}</b>: {esc('; '.join(warnings))}</li>" for name, warnings in warned]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- the command ---------------------------------------------------------------------------------------------------


def preload() -> None:
    """What reading the hosts needs, imported while ansible-inventory runs (paramiko alone takes about 0.3 s)."""
    import paramiko  # noqa: F401

    for name in ("ostree._facts", "ostree._status", "ostree._bootc", "ostree._admin", "flatpak._apps", "podman._quadlet_keys"):
        module_utils.load(name)


def collect(args: argparse.Namespace, err: Any) -> dict[str, Any]:
    """The status document of the inventory's hosts."""
    process = subprocess.Popen(
        inventory_argv(args),
        env=inventory_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        preload()
    except BaseException:
        process.kill()
        process.wait()
        raise
    hosts = read_inventory(process)
    if not hosts:
        raise drift.DriftError("no host matched the inventory and limit")
    defaults = remote.Defaults(
        user=args.user, private_key=args.private_key, accept_new_host_keys=args.accept_new_host_keys, timeout=args.timeout
    )
    targets, refused, ignored = plan_targets(hosts, defaults)
    if ignored:
        err.print(
            f"status: ssh options ignored (not used by a direct connection): {', '.join(ignored)}", highlight=False, markup=False
        )
    marker = secrets.token_hex(12)
    results = remote.run_all(targets, remote_command(marker, args.become), SCRIPT.encode(), args.forks, args.command_timeout)
    reports: dict[str, dict[str, Any]] = {}
    for name, host in hosts.items():
        if name in refused:
            reports[name] = refused_report(refused[name])
        else:
            result = results[name]
            reports[name] = host_report(result, marker, as_root=args.become or result.target.user == "root")
        reports[name]["groups"] = host["groups"]
    return {
        "format": FORMAT,
        "generated": now(),
        "inventory": str(args.inventory),
        "limit": args.limit,
        "hosts": reports,
        "summary": summarize(reports),
    }


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    if not Path(args.inventory).exists() and "," not in args.inventory:
        err.print(f"[red]status: inventory {args.inventory} does not exist[/]", highlight=False)
        return EXIT_ERROR
    try:
        document = collect(args, err)
    except drift.DriftError as error:
        err.print(f"[red]status: {error}[/]", highlight=False)
        return EXIT_ERROR
    if args.html:
        try:
            write_durably(Path(args.html), render_html(document), 0o600)
        except OSError as error:
            err.print(f"[red]status: cannot write {args.html}: {error.strerror or error}[/]", highlight=False)
            return EXIT_ERROR
    if args.json:
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
    else:
        out = Console()
        if not out.is_terminal and "COLUMNS" not in os.environ:
            out.width = 400  # a log or a pipe: a row on one line
        out.print(summary_table(document))
        summary = document["summary"]
        out.print(
            f"{summary['hosts']} hosts: {summary['ok']} read, {summary['reboot_required']} with a reboot pending, "
            f"{summary['busy']} busy, {summary['unreachable']} unreachable, {summary['failed']} not read",
            highlight=False,
        )
    for warning, names in notes(document).items():
        err.print(f"status: {warning}: {', '.join(names)}", highlight=False, markup=False)
    return exit_code(document)


def notes(document: dict[str, Any]) -> dict[str, list[str]]:
    """{warning: hosts} of the hosts' warnings, each warning once."""
    found: dict[str, list[str]] = {}
    for name, report in document["hosts"].items():
        for warning in report["warnings"]:
            found.setdefault(warning, []).append(name)
    return found


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="each host's deployment state over SSH (booted, staged, reboot pending, busy, counts), fleet-wide and fast",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--inventory", required=True, help="inventory file, directory or host list")
    parser.add_argument("-l", "--limit", help="hosts or groups to read (ansible-inventory --limit)")
    parser.add_argument("--json", action="store_true", help="print the immutable.hosts.status/1 document instead of the table")
    parser.add_argument("--html", metavar="FILE", help="also write the fleet page (the drift report's style) to FILE")
    parser.add_argument("-f", "--forks", type=positive_int, default=50, help="hosts read at once (default: %(default)s)")
    parser.add_argument("-u", "--user", help="connect as this user where the inventory names none")
    parser.add_argument("--private-key", help="the SSH private key file where the inventory names none")
    parser.add_argument(
        "-b", "--become", action="store_true", help="read as root through sudo -n (a user that may sudo without a password)"
    )
    parser.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="accept and record the key of a host known_hosts does not know (a changed key is always refused)",
    )
    parser.add_argument(
        "-T", "--timeout", type=positive_float, default=10.0, help="seconds to connect and log in (default: %(default)s)"
    )
    parser.add_argument(
        "--command-timeout",
        type=positive_float,
        default=60.0,
        help="seconds for the read on a host once logged in (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not 1 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not more than 0")
    return value


if __name__ == "__main__":
    from immutable_hosts import cli

    sys.exit(cli.main(["status", *sys.argv[1:]]))
