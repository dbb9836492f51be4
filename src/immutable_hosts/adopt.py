"""``immutable-hosts adopt -i INVENTORY HOST``: write a host's observed state into its host_vars file.

Reads the host with the collection's own modules, changing nothing: ``ostree_facts`` (the image or ref, layered
packages and kernel arguments of the deployment that boots next), ``flatpak`` in check mode (the system
installation's apps and their remotes) and ``flatpak_override`` in check mode (the system overrides). Then it sets
the role variables in ``host_vars/HOST.yml`` next to the inventory with ruamel.yaml's round trip, so comments, key
order and quoting stay; other keys are not touched. It shows the unified diff and asks before writing, unless
``--yes``.

Variables written (the roles' names):

- ``os_image_ref`` (``remote:ref``) or ``os_image_image`` (an image name, with ``os_image_signature``,
  ``os_image_transport`` and ``os_image_signature_remote`` when they are not the defaults ``signed``, ``registry``
  and none); the other one is removed.
- ``os_image_packages``: the requested layered packages, sorted.
- ``os_image_kargs``: the kernel arguments of the next boot, without OSTree's own ``ostree=``.
- ``flatpak_apps``: ``[{name: APP_ID, remote: REMOTE}]`` for the apps of the system installation.
- ``flatpak_overrides``: ``[{app: APP_ID, ...}]`` or ``[{global: true, ...}]`` with ``flatpak_override``'s options.

What a host reports is data, never code: every string written is tagged ``!unsafe``, so Jinja never evaluates it
when the inventory is read (an override value ``{{ lookup('pipe', ...) }}`` would otherwise run on the control
node). The file keeps its mode (a new one gets the umask's), is written whole (synced, renamed, directory synced)
and never outside ``host_vars/``; HOST must be one host of the inventory, not a group or a pattern.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from immutable_hosts._parser import Parser
from immutable_hosts.drift import DriftError, ansible_tool, collection_path
from immutable_hosts.files import write_durably

HOST_VARS_HEADER = "# host_vars for {host}; variables below were adopted from the host by `immutable-hosts adopt`.\n"
UNSAFE = "!unsafe"
# One inventory host: no pattern characters (, : * ? ! & ~ [ ]), no path separators, no leading dot or dash.
HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,252}\Z")
# Keys adopted from a host (environment variable and D-Bus names): plain names only.
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*(\.\*)?\Z")

# The read-only playbook: our modules in check mode, results gathered on the controller in one JSON file.
OBSERVE_PLAYBOOK = """\
- name: Observe the host for immutable-hosts adopt (changes nothing)
  hosts: "{{ adopt_host }}"
  gather_facts: false
  become: true
  tasks:
    - name: OSTree facts
      immutable.hosts.ostree_facts:
      register: adopt_ostree
      ignore_errors: true

    - name: System Flatpak installation (check mode, reads the installed refs)
      immutable.hosts.flatpak:
        name: [org.immutablehosts.AdoptProbe]
        state: absent
      check_mode: true
      register: adopt_flatpak
      ignore_errors: true

    - name: System Flatpak override files
      ansible.builtin.find:
        paths: [/var/lib/flatpak/overrides]
        file_type: file
      register: adopt_override_files

    - name: System Flatpak overrides (check mode, reads each override)
      immutable.hosts.flatpak_override:
        app: "{{ omit if item == 'global' else item }}"
        global: "{{ item == 'global' }}"
        state: absent
      check_mode: true
      loop: "{{ adopt_override_files.files | map(attribute='path') | map('basename') | sort }}"
      register: adopt_overrides
      ignore_errors: true

    - name: Hand the observations to the controller
      ansible.builtin.copy:
        dest: "{{ adopt_output }}"
        mode: "0600"
        content: >-
          {{ {'ostree': adopt_ostree, 'flatpak': adopt_flatpak, 'overrides': adopt_overrides} | to_json }}
      delegate_to: localhost
      become: false
"""


class AdoptError(Exception):
    """The host could not be read or the host_vars file cannot be written; the message says why."""


# --- observing ---------------------------------------------------------------------------------------------------------


def observe(inventory: str, host: str) -> dict[str, Any]:
    """Run the observation playbook against one host; returns the raw module results."""
    with collection_path() as (collections, _collection), tempfile.TemporaryDirectory(prefix="immutable-hosts-adopt-") as temp:
        playbook = Path(temp) / "observe.yml"
        playbook.write_text(OBSERVE_PLAYBOOK, encoding="utf-8")
        output = Path(temp) / "observed.json"
        extra = json.dumps({"adopt_host": host, "adopt_output": str(output)})
        argv = [ansible_tool("ansible-playbook"), "-i", inventory, "--limit", host, "--extra-vars", extra, str(playbook)]
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": collections,
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_NOCOLOR": "1",
        }
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if not output.exists():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
            raise AdoptError(f"could not read {host} (ansible-playbook exited {done.returncode}):\n{tail}")
        return json.loads(output.read_text(encoding="utf-8"))


def module_failed(result: Any) -> bool:
    return not isinstance(result, dict) or bool(result.get("failed")) or bool(result.get("skipped"))


def observed_variables(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """From the raw results to (variables to set, variables to remove, notes for the user)."""
    values: dict[str, Any] = {}
    remove: list[str] = []
    notes: list[str] = []
    ostree_result = raw.get("ostree")
    facts = {} if module_failed(ostree_result) else ostree_result.get("ansible_facts", {}).get("ostree", {})
    if not facts.get("is_ostree"):
        reason = (
            ostree_result.get("msg") if isinstance(ostree_result, dict) and ostree_result.get("msg") else "not an OSTree host"
        )
        notes.append(f"OS image, packages and kernel arguments not adopted: {reason}")
    else:
        deployments = facts.get("deployments") or []
        target = deployments[0] if deployments else facts.get("booted") or {}
        origin = target.get("origin_parsed") or {}
        if origin.get("kind") == "refspec":
            values["os_image_ref"] = f"{origin['remote']}:{origin['ref']}" if origin.get("remote") else origin["ref"]
            remove += ["os_image_image", "os_image_signature", "os_image_transport", "os_image_signature_remote"]
        elif origin.get("kind") == "container" and origin.get("image"):
            # The keys of imageref.ImageReference.to_dict(), as ostree_facts reports them for rpm-ostree and bootc.
            values["os_image_image"] = origin["image"]
            remove.append("os_image_ref")
            for key, value, default in (
                ("os_image_signature", origin.get("sigverify"), "signed"),
                ("os_image_transport", origin.get("transport"), "registry"),
                ("os_image_signature_remote", origin.get("remote"), None),
            ):
                if value != default:
                    values[key] = value
                else:
                    remove.append(key)
        else:
            notes.append(f"the next deployment follows {target.get('origin')!r}, neither a ref nor an image: not adopted")
        values["os_image_packages"] = sorted(target.get("requested_packages") or [])
        kargs = facts.get("kargs")
        if kargs is None:
            notes.append("kernel arguments unreadable (run as root or with become): not adopted")
        else:
            values["os_image_kargs"] = [arg for arg in kargs if not arg.startswith("ostree=")]
    flatpak_result = raw.get("flatpak")
    if module_failed(flatpak_result):
        notes.append(f"Flatpak apps not adopted: {(flatpak_result or {}).get('msg', 'flatpak could not be read')}")
    else:
        refs = ((flatpak_result.get("diff") or {}).get("before") or {}).get("refs") or {}
        apps = []
        for ref, origin in sorted(refs.items()):
            parts = ref.split("/")
            if len(parts) == 4 and parts[0] == "app":
                apps.append({"name": parts[1], "remote": origin})
        values["flatpak_apps"] = apps
    overrides_result = raw.get("overrides") or {}
    if overrides_result.get("skipped") and not overrides_result.get("results"):
        values["flatpak_overrides"] = []
    elif module_failed(overrides_result) and not overrides_result.get("results"):
        notes.append("Flatpak overrides not adopted: could not be read")
    else:
        overrides = []
        for item in overrides_result.get("results") or []:
            if module_failed(item):
                notes.append(f"override {item.get('item')}: {item.get('msg', 'unreadable')}: not adopted")
                continue
            view = (item.get("diff") or {}).get("before") or {}
            entry: dict[str, Any] = {"global": True} if item.get("item") == "global" else {"app": item.get("item")}
            options, unknown = override_options(view)
            if unknown:
                notes.append(f"override {item.get('item')}: {', '.join(unknown)} kept on the host only (no option for them)")
            if options:
                entry.update(options)
                overrides.append(entry)
        values["flatpak_overrides"] = overrides
    return values, remove, notes


# flatpak_override's diff view -> its options: [Context] lists split into granted and denied ("!x").
CONTEXT_OPTIONS = {
    "shared": ("shares", "unshares"),
    "sockets": ("sockets", "nosockets"),
    "devices": ("devices", "nodevices"),
    "filesystems": ("filesystems", "nofilesystems"),
}


def override_options(view: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    options: dict[str, Any] = {}
    unknown: list[str] = []
    for key, entries in view.items():
        if key in CONTEXT_OPTIONS:
            granted, denied = CONTEXT_OPTIONS[key]
            yes = [e for e in entries if not e.startswith("!")]
            no = [e[1:] for e in entries if e.startswith("!")]
            if yes:
                options[granted] = yes
            if no:
                options[denied] = no
        elif key == "features":
            options["features"] = list(entries)
        elif key == "persistent":
            options["persist"] = list(entries)
        elif key == "environment":
            options[key] = {name: value for name, value in entries.items() if KEY_RE.match(str(name))}
            unknown += [f"environment {name!r}" for name in entries if not KEY_RE.match(str(name))]
        elif key == "unset_environment":
            options[key] = entries
        elif key in ("session_bus", "system_bus"):
            for name, policy in entries.items():
                if not KEY_RE.match(str(name)):
                    unknown.append(f"{key} {name!r}")
                    continue
                option = {("session_bus", "talk"): "talk_names", ("session_bus", "own"): "own_names"}.get((key, policy))
                if key == "system_bus" and policy == "talk":
                    option = "system_talk_names"
                if option:
                    options.setdefault(option, []).append(name)
                else:
                    unknown.append(f"{key} {name}={policy}")
        else:
            unknown.append(str(key))
    return options, unknown


# --- host_vars round trip -----------------------------------------------------------------------------------------------


def host_vars_path(inventory: str, host: str) -> Path:
    base = Path(inventory)
    directory = (base if base.is_dir() else base.parent) / "host_vars"
    for candidate in (directory / f"{host}.yml", directory / f"{host}.yaml", directory / host / "main.yml"):
        if candidate.exists():
            return candidate
    return directory / f"{host}.yml"


def make_yaml(text: str) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    # Keep the file's own list style: "- item" under its key (offset 0) or indented by two (offset 2).
    lines = text.splitlines()
    offset = 2
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)- ", line)
        if match and index:
            previous = next((p for p in reversed(lines[:index]) if p.strip() and not p.lstrip().startswith("#")), "")
            if previous.rstrip().endswith(":"):
                parent = len(previous) - len(previous.lstrip())
                offset = 0 if len(match.group(1)) == parent else len(match.group(1)) - parent
                break
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    yaml.explicit_start = text.lstrip().startswith("---")
    return yaml


def unsafe(value: Any) -> Any:
    """Every string inside ``value`` tagged ``!unsafe``: data from a host that Jinja must never evaluate."""
    from ruamel.yaml.comments import TaggedScalar

    if isinstance(value, str):
        return TaggedScalar(value, style="'" if value == "" else None, tag=UNSAFE)
    if isinstance(value, list):
        return [unsafe(item) for item in value]
    if isinstance(value, dict):
        return {key: unsafe(item) for key, item in value.items()}
    return value


def comparable(value: Any) -> Any:
    """Plain data for comparisons, with a tag kept: an untagged string is not the same as an ``!unsafe`` one."""
    from ruamel.yaml.comments import TaggedScalar

    if isinstance(value, TaggedScalar):
        return {"tag": str(value.tag.value if hasattr(value.tag, "value") else value.tag), "value": value.value}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): comparable(item) for key, item in value.items()}
    return value


def untagged(value: Any) -> Any:
    from ruamel.yaml.comments import TaggedScalar

    if isinstance(value, TaggedScalar):
        return value.value
    if isinstance(value, list):
        return [untagged(item) for item in value]
    if isinstance(value, dict):
        return {str(key): untagged(item) for key, item in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    return json.dumps(comparable(a), sort_keys=True, default=str) == json.dumps(comparable(b), sort_keys=True, default=str)


def replace_list(old: Any, new: list[Any]) -> None:
    """Replace a CommentedSeq's items in place, keeping the comments of items that stay and the comment after it."""

    def key(item: Any) -> str:  # an item's comment stays with its value, tagged or not
        return json.dumps(untagged(item), sort_keys=True, default=str)

    comments = {key(item): old.ca.items[i] for i, item in enumerate(old) if i in old.ca.items}
    trailing = old.ca.items.get(len(old) - 1) if len(old) else None
    old_last = key(old[-1]) if len(old) else None
    old.clear()
    old.ca.items.clear()
    for item in new:
        old.append(item)
    for i, item in enumerate(old):
        if key(item) in comments and not (key(item) == old_last and i != len(old) - 1):
            old.ca.items[i] = comments[key(item)]
    if len(old) and trailing is not None and (len(old) - 1) not in old.ca.items:
        old.ca.items[len(old) - 1] = trailing


def update_document(text: str, host: str, values: dict[str, Any], remove: list[str]) -> str:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import YAMLError

    yaml = make_yaml(text)
    try:
        data = yaml.load(text) if text.strip() else None
    except YAMLError as error:
        problem = " ".join(str(error).split())
        raise AdoptError(
            f"the host_vars file is not one readable YAML document ({problem}); fix it or pass --host-vars"
        ) from None
    prefix = ""
    if data is None:
        # Empty, or only comments: keep them (or start with a header) above the adopted variables.
        data = CommentedMap()
        prefix = text if text.strip() else HOST_VARS_HEADER.format(host=host)
        if not prefix.endswith("\n"):
            prefix += "\n"
    if not isinstance(data, CommentedMap):
        raise AdoptError("the host_vars file is not a YAML mapping")
    for key in remove:
        if key in data:
            del data[key]
    for key, plain in values.items():
        value = unsafe(plain)
        if key in data and same(data[key], value):
            continue
        if key in data and isinstance(data[key], CommentedSeq) and isinstance(value, list):
            replace_list(data[key], value)
        else:
            data[key] = value
    stream = io.StringIO()
    yaml.dump(data, stream)
    return prefix + stream.getvalue()


def unified(before: str, after: str, path: Path) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}"))


def confirm(prompt: str) -> bool:
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


# --- the command -------------------------------------------------------------------------------------------------------


def check_host_name(host: str) -> None:
    if not HOST_RE.match(host or "") or ".." in host:
        raise AdoptError(
            f"{host!r} is not a host name: adopt takes one inventory host (letters, digits and . _ - @ +), "
            "not a pattern or a path"
        )


def check_host(inventory: str, host: str) -> None:
    """HOST must name exactly one host of the inventory: not a group, not a pattern, nothing that leads out of
    host_vars/."""
    check_host_name(host)
    if not Path(inventory).exists():
        raise AdoptError(f"cannot read the inventory {inventory}: it does not exist")
    done = subprocess.run(
        [ansible_tool("ansible-inventory"), "-i", inventory, "--list"],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        check=False,
    )
    if done.returncode != 0:
        raise AdoptError(f"cannot read the inventory {inventory}: {done.stderr.strip() or done.stdout.strip()}")
    try:
        listing = json.loads(done.stdout)
    except ValueError:
        raise AdoptError(f"ansible-inventory printed no inventory for {inventory}") from None
    groups = {name for name in listing if name != "_meta"} | {"all", "ungrouped"}
    hosts = set((listing.get("_meta") or {}).get("hostvars") or {})
    for group in groups:
        hosts.update((listing.get(group) or {}).get("hosts") or [])
    if host in hosts:
        return
    if host in groups:
        raise AdoptError(f"{host} is a group of {inventory}; adopt takes one host (one of its hosts)")
    raise AdoptError(f"{host} is not a host of {inventory}")


def host_vars_target(args: argparse.Namespace) -> Path:
    if args.host_vars:
        return Path(args.host_vars)
    path = host_vars_path(args.inventory, args.host)
    base = Path(args.inventory)
    directory = ((base if base.is_dir() else base.parent) / "host_vars").resolve()
    if directory not in path.resolve().parents:
        raise AdoptError(f"{path} is not inside {directory}")
    return path


def write_file(path: Path, text: str) -> None:
    """Write the host_vars file whole, with the old one's mode (the umask's for a new file): a file that holds
    ansible_become_password stays 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    write_durably(path, text, mode)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.syntax import Syntax

    err = Console(stderr=True, soft_wrap=True)
    try:
        check_host_name(args.host)
        path = host_vars_target(args)
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        try:
            update_document(before, args.host, {}, [])  # the file must be readable before anything else happens
        except AdoptError as error:
            raise AdoptError(f"{path}: {error}") from None
        check_host(args.inventory, args.host)
        with err.status(f"reading {escape(args.host)} …"):
            raw = observe(args.inventory, args.host)
        values, remove, notes = observed_variables(raw)
        after = update_document(before, args.host, values, remove)
    except (AdoptError, DriftError, OSError, UnicodeDecodeError) as error:
        err.print(f"[red]adopt: {escape(printable(str(error)))}[/]", highlight=False)
        return 1
    for note in notes:
        err.print(f"[yellow]note:[/] {escape(printable(note))}", highlight=False)
    if after == before:
        err.print(f"{escape(str(path))} already matches {escape(args.host)}: nothing to write")
        return 0
    diff = unified(before, after, path)
    Console().print(Syntax(printable(diff, keep="\n"), "diff", theme="ansi_dark", background_color="default"))
    if not args.yes and not confirm(f"Write {path}? [y/N] "):
        err.print("not written")
        return 1
    try:
        write_file(path, after)
    except OSError as error:
        err.print(f"[red]adopt: cannot write {escape(str(path))}: {escape(str(error))}[/]", highlight=False)
        return 1
    err.print(f"wrote {escape(str(path))}")
    return 0


def printable(text: str, keep: str = "") -> str:
    """Host data for the terminal: control characters (escape sequences among them) shown as \\xNN."""
    return "".join(
        c if c.isprintable() or c in keep else "\\x%02x" % ord(c) if ord(c) < 256 else "\\u%04x" % ord(c) for c in text
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "adopt",
        help="write a host's observed state (image, packages, kargs, flatpaks) into its host_vars file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--inventory", required=True, help="inventory file or directory (host_vars/ is next to it)")
    parser.add_argument("host", help="the inventory host to adopt")
    parser.add_argument("--yes", "-y", action="store_true", help="write without asking")
    parser.add_argument("--host-vars", help="the host_vars file to write (default: host_vars/HOST.yml next to the inventory)")
    parser.set_defaults(func=run)


if __name__ == "__main__":
    parser = Parser(prog="immutable-hosts")
    register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["adopt", *sys.argv[1:]])
    sys.exit(int(parsed.func(parsed)))
