"""``immutable-hosts image build``: the image of a group or a host of an inventory, built, pushed and signed.

Runs the collection's ``playbooks/image_build.yml`` (the ``immutable.hosts.image_build`` role) limited to the group
or host: each host's document, what every host's holds compiled into one build context (a ``Containerfile`` and the
image's files), the rest listed as staying with each host.  The image carries labels saying which inventory, group or
host and commit it comes from.  When the inventory names where the image goes (``image_build_image``, with
``image_build_host`` and the signing key), the context is built with Podman there, pushed and signed, and the digest
printed.  ``--check`` changes nothing and says what would change.

Exit codes: 0 the context and the image are as the inventory says (or were made so), 2 with ``--check`` when either
would change, 1 on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from immutable_hosts import drift

PLAYBOOK = "playbooks/image_build.yml"


class ImageError(Exception):
    pass


def source_revision(inventory: Path) -> str | None:
    """The Git commit the inventory is at, when it lives in a Git work tree."""
    directory = inventory if inventory.is_dir() else inventory.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def labels(args: argparse.Namespace, name: str, kind: str) -> dict[str, str]:
    found = {
        "io.immutable-hosts.inventory": str(args.inventory),
        "io.immutable-hosts.source": "%s %s" % (kind, name),
    }
    revision = source_revision(Path(args.inventory))
    if revision:
        found["org.opencontainers.image.revision"] = revision
    return found


def build_argv(args: argparse.Namespace, playbook: Path, context: Path, report: Path) -> list[str]:
    name, kind = (args.group, "group") if args.group else (args.host, "host")
    extra = {
        # --context outranks the inventory; without it, the inventory's image_build_path, else images/NAME here.
        ("image_build_path" if args.context else "image_build_default_path"): str(context),
        "image_build_report": str(report),
        "image_build_labels": labels(args, name, kind),
    }
    argv = [drift.ansible_tool("ansible-playbook"), "-i", str(args.inventory), "--limit", name]
    argv += ["--extra-vars", json.dumps(extra)]
    for more in args.extra_vars or []:
        argv += ["--extra-vars", more]
    argv += drift.playbook_options(args)
    if args.check:
        argv += ["--check", "--diff"]
    return [*argv, str(playbook)]


def summary(report: dict[str, Any], check: bool) -> list[str]:
    lines = ["context: %s" % report["context"], "base image: %s" % report["base_image"]]
    lines.append("context digest: %s" % report["context_digest"])
    if check:
        changed = [d["after_header"] if d["after_header"] != "/dev/null" else d["before_header"] for d in report["diff"]]
        lines.append("would change: %s" % (", ".join(changed) if changed else "nothing"))
    else:
        lines.append("written: %s" % ("yes" if report["changed"] else "no change"))
    image = report.get("image")
    if image:
        if check:
            lines.append("image %s: %s" % (image["image"], "would be built and pushed" if image["changed"] else "up to date"))
        else:
            lines.append("image %s: %s" % (image["image"], "built and pushed" if image.get("built") else "up to date"))
        if image.get("reference"):
            lines.append("digest: %s" % image["reference"])
        lines.append("signed: %s" % ("yes (sigstore)" if image["signed"] else "no"))
    lines.append("stays at runtime (no image carries it):")
    lines += ["  %s: %s" % (entry["resource"], entry["reason"]) for entry in report["runtime"]] or ["  nothing"]
    lines.append("stays with each host (not shared by the group):")
    for host in sorted(report["per_host"]):
        own = report["per_host"][host]
        lines.append("  %s: %s" % (host, ", ".join(own) if own else "nothing"))
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        with drift.collection_path() as (collections, root):
            playbook = root / PLAYBOOK
            name = args.group or args.host
            context = Path(args.context or Path("images") / name).resolve()
            with tempfile.TemporaryDirectory(prefix="immutable-hosts-image-") as temp:
                report_path = Path(temp) / "report.json"
                env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections, "ANSIBLE_RETRY_FILES_ENABLED": "0"}
                done = subprocess.run(build_argv(args, playbook, context, report_path), env=env, check=False)
                if done.returncode != 0 or not report_path.exists():
                    print("image build: ansible-playbook failed (exit %d)" % done.returncode, file=sys.stderr)
                    return 1
                report = json.loads(report_path.read_text())
    except (drift.DriftError, ImageError, OSError) as error:
        print("image build: %s" % error, file=sys.stderr)
        return 1
    print("\n".join(summary(report, args.check)))
    return 2 if args.check and would_change(report) else 0


def would_change(report: dict[str, Any]) -> bool:
    return bool(report["changed"] or (report.get("image") or {}).get("changed"))


def register(subparsers: Any) -> None:
    image = subparsers.add_parser("image", help="image mode: build the image of a group or a host")
    commands = image.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    parser = commands.add_parser(
        "build",
        help="build, push and sign the image of a group or a host (its build context first)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--inventory", required=True, help="inventory file or directory")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--group", help="the inventory group whose image is built")
    which.add_argument("--host", help="the inventory host whose image is built")
    parser.add_argument(
        "--context",
        help="the build context's directory on the build host (default: the inventory's image_build_path, else "
        "images/GROUP-OR-HOST here)",
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 2 when the context would change")
    parser.add_argument("-e", "--extra-vars", action="append", help="passed to ansible-playbook --extra-vars (repeatable)")
    drift.add_playbook_options(parser)
    parser.set_defaults(func=run)
