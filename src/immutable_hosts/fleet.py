"""``immutable-hosts drift merge``: per-host drift reports, from hosts that converge themselves (pull mode) or from
several controllers, merged into one fleet report (``drift.json``, ``drift.md``, ``drift.html``).

Sources are report files, directories of them (searched recursively for ``*.json``) and ``http(s)://`` URLs of
reports. Each is an ``immutable.hosts.drift/1`` document; a host in several keeps the entry of the newest document
(its ``generated`` time). The summary is computed again over the merged hosts, with the counts of each rollout ring.
The report pages list every host up to 200 hosts; beyond, the hosts that need a look, with the summaries by group and
by resource first. Exit codes are the drift command's: 0 no drift, 2 drift, 1 an error or a failed or unreachable
host.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from immutable_hosts import drift

MAX_REPORT_BYTES = 64 * 1024 * 1024  # one report; a host's report is kilobytes


class MergeError(Exception):
    pass


def read_source(source: str) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) of each report a source names."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.build_opener().open(source, timeout=60) as response:  # http(s) only, checked above
                data = response.read(MAX_REPORT_BYTES + 1)
        except OSError as error:
            raise MergeError(f"{source}: {error}") from None
        if len(data) > MAX_REPORT_BYTES:
            raise MergeError(f"{source}: more than {MAX_REPORT_BYTES} bytes")
        yield source, data
        return
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file() and not p.is_symlink())
        if not files:
            raise MergeError(f"{source}: no *.json report in it")
    elif path.is_file():
        files = [path]
    else:
        raise MergeError(f"{source}: no such file, directory or http(s) URL")
    for file in files:
        if file.stat().st_size > MAX_REPORT_BYTES:
            raise MergeError(f"{file}: more than {MAX_REPORT_BYTES} bytes")
        yield str(file), file.read_bytes()


def parse(where: str, data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise MergeError(f"{where} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != drift.FORMAT or not isinstance(document.get("hosts"), dict):
        raise MergeError(f"{where} is not an {drift.FORMAT} document")
    return document


def summarize(hosts: dict[str, Any], rings: list[str]) -> dict[str, Any]:
    """The summary the drift callback writes, over ``hosts``."""
    statuses = [host["status"] for host in hosts.values()]
    summary: dict[str, Any] = {
        "hosts": len(hosts),
        "in_sync": statuses.count("in_sync"),
        "drifted": sum(1 for host in hosts.values() if host["changes"]),
        "failed": statuses.count("failed"),
        "unreachable": statuses.count("unreachable"),
        "changes": sum(len(host["changes"]) for host in hosts.values()),
    }
    counts = {ring: {"ring": ring, "hosts": 0, "in_sync": 0, "drifted": 0, "failed": 0, "unreachable": 0} for ring in rings}
    for host in hosts.values():
        if host.get("ring") in counts:
            counts[host["ring"]]["hosts"] += 1
            counts[host["ring"]][host["status"]] += 1
    if counts:
        summary["rings"] = list(counts.values())
    return summary


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    if not documents:
        raise MergeError("no report to merge")
    hosts: dict[str, Any] = {}
    newest: dict[str, str] = {}
    rings: list[str] = []
    playbooks: list[str] = []
    for document in documents:
        generated = str(document.get("generated") or "")
        for name, host in document["hosts"].items():
            if not isinstance(host, dict) or host.get("status") not in drift.STATUS_LABELS:
                raise MergeError(f"host {name!r} of a report generated {generated} has no status")
            if name not in hosts or generated >= newest[name]:
                hosts[name], newest[name] = dict(host, report=generated), generated
        for ring in (entry.get("ring") for entry in (document.get("summary") or {}).get("rings") or []):
            if ring not in rings:
                rings.append(ring)
        playbooks += [p for p in document.get("playbooks") or [] if p not in playbooks]
    times = sorted(newest.values())
    return {
        "format": drift.FORMAT,
        "generated": drift_now(),
        "started": times[0] if times else "",
        "ansible_version": ", ".join(sorted({str(d.get("ansible_version", "")) for d in documents} - {""})),
        "check_mode": all(bool(d.get("check_mode")) for d in documents),
        "playbooks": playbooks,
        "merged_from": len(documents),
        "hosts": dict(sorted(hosts.items())),
        "summary": summarize(hosts, rings),
    }


def drift_now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    out = Console()
    try:
        documents = [parse(where, data) for source in args.sources for where, data in read_source(source)]
        document = merge(documents)
    except MergeError as error:
        err.print(f"[red]drift merge: {error}[/]", highlight=False)
        return drift.EXIT_ERROR
    report_dir = Path(args.report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": report_dir / "drift.json", "md": report_dir / "drift.md", "html": report_dir / "drift.html"}
    drift.write_private(paths["json"], json.dumps(document, indent=1) + "\n")
    drift.write_private(paths["md"], drift.render_markdown(document))
    drift.write_private(paths["html"], drift.render_html(document))
    summary = document["summary"]
    out.print(
        f"{summary['hosts']} hosts from {document['merged_from']} reports: {summary['in_sync']} in sync, "
        f"{summary['drifted']} drifted, {summary['failed']} failed, {summary['unreachable']} unreachable. "
        f"Reports: {paths['html']}  {paths['md']}  {paths['json']}",
        highlight=False,
    )
    return drift.exit_code(document)


def register(drift_parser: argparse.ArgumentParser) -> None:
    commands = drift_parser.add_subparsers(dest="drift_command", metavar="COMMAND")
    parser = commands.add_parser(
        "merge",
        help="merge per-host drift reports (pull mode, several controllers) into one fleet report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sources", nargs="+", metavar="DIR|FILE|URL", help="reports, directories of them, http(s) URLs")
    parser.add_argument(
        "--report-dir", default="drift-report", help="where drift.json, drift.md and drift.html go (default: %(default)s)"
    )
    parser.set_defaults(func=run)


if __name__ == "__main__":
    from immutable_hosts import cli

    sys.exit(cli.main(["drift", "merge", *sys.argv[1:]]))
