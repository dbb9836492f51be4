"""Write the options of ``immutable.hosts.host_state``'s DOCUMENTATION from the unit modules' own documentation.

The document's schema is the units' argument specs (module_utils/_host_state.py), so its documentation is theirs:
each resource's suboptions are the options ``ansible-doc`` shows for that module (doc fragments merged), minus the
ones the document sets itself.  References to other options (``O(...)``) become code (``C(...)``), since the name
they point to is the unit module's, not a path in this document.

    python tools/host_state_doc.py          # rewrite plugins/modules/host_state.py
    python tools/host_state_doc.py --check  # exit 1 when it is not up to date
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "plugins/modules/host_state.py"
BEGIN = "# BEGIN GENERATED OPTIONS (tools/host_state_doc.py)\n"
END = "# END GENERATED OPTIONS\n"
KEEP = ("description", "type", "elements", "choices", "default", "required", "aliases")
OSTREE = ("wait_timeout", "bypass_driver")
INSTALLATION = ("scope", "user", "installation")


def unit_options() -> dict:
    """The options of every unit module as ansible-doc shows them, keyed by module name."""
    modules = ["rebase", "rpm_ostree_packages", "kargs", "update_policy", "rootless_user", "podman_secret", "quadlet"]
    modules += ["flatpak_remote", "flatpak", "flatpak_override"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build"), ANSIBLE_NOCOLOR="1")
    subprocess.run([sys.executable, str(ROOT / "tools/collection_tree.py"), str(ROOT / "build")], check=True, env=env)
    doc = Path(sys.executable).with_name("ansible-doc")
    out = subprocess.run(
        [str(doc), "--json", *("immutable.hosts." + name for name in modules)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return {name.split(".")[-1]: data["doc"]["options"] for name, data in json.loads(out).items()}


def plain(text):
    if isinstance(text, list):
        return [plain(item) for item in text]
    return re.sub(r"\b(?:O|RV)\(([^)]*)\)", lambda m: "C(%s)" % m.group(1).split("=")[0], text)


def option(spec: dict) -> dict:
    found = {key: spec[key] for key in KEEP if key in spec}
    found["description"] = plain(found.get("description", []))
    if isinstance(found["description"], str):
        found["description"] = [found["description"]]
    if "suboptions" in spec:
        found["suboptions"] = {name: option(sub) for name, sub in spec["suboptions"].items()}
    if found.get("required") is False:
        del found["required"]
    if "default" in found and found["default"] is None:
        del found["default"]
    return found


def suboptions(options: dict, without: tuple = ()) -> dict:
    return {name: option(spec) for name, spec in options.items() if name not in without}


def resource(description: str, module: str, options: dict, without: tuple = (), many: bool = True) -> dict:
    entry = {
        "description": [description, "Each takes the options of M(immutable.hosts.%s)%s." % (module, except_(without))],
        "type": "list" if many else "dict",
        "suboptions": suboptions(options[module], without),
    }
    if many:
        entry["elements"] = "dict"
        entry["default"] = []
    return entry


def except_(without: tuple) -> str:
    return ", except %s" % ", ".join("C(%s)" % name for name in without) if without else ""


def installation_options(units: dict) -> dict:
    found = suboptions({name: units["flatpak"][name] for name in INSTALLATION})
    found["user"]["aliases"] = ["name"]
    return found


def document(units: dict) -> dict:
    ostree_common = suboptions(units["kargs"], ())
    return {
        "os": {
            "description": [
                "The operating system: what the host follows, its layered packages and base overrides, its kernel "
                "arguments and its automatic updates. Every change stacks on one pending deployment.",
                "A rebase onto an ostree ref (with rpm-ostree) layers C(packages.name) in the same transaction.",
            ],
            "type": "dict",
            "suboptions": {
                "rebase": dict(
                    resource("The ref or image the host follows.", "rebase", units, OSTREE + ("install",), many=False),
                ),
                "packages": resource("Layered packages and base overrides.", "rpm_ostree_packages", units, OSTREE, many=False),
                "kargs": resource("Kernel arguments, one entry per state.", "kargs", units, OSTREE),
                "update_policy": resource(
                    "The automatic update policy (C(/etc/rpm-ostreed.conf)) and its timer.",
                    "update_policy",
                    units,
                    ("path",),
                    many=False,
                ),
                **{name: ostree_common[name] for name in OSTREE},
            },
        },
        "users": {
            "description": [
                "Rootless users, each with its Podman secrets and Quadlet units. Each takes the options of "
                "M(immutable.hosts.rootless_user), and C(secrets) and C(quadlets).",
            ],
            "type": "list",
            "elements": "dict",
            "default": [],
            "suboptions": dict(
                suboptions(units["rootless_user"]),
                secrets=resource("The user's Podman secrets.", "podman_secret", units, ("user",)),
                quadlets=resource("The user's Quadlet units.", "quadlet", units, ("user",)),
            ),
        },
        "flatpak": {
            "description": [
                "Flatpak installations (the system's, a user's or a custom one), each with its remotes, apps and "
                "overrides. C(scope), C(user) and C(installation) pick the installation as in M(immutable.hosts.flatpak).",
            ],
            "type": "list",
            "elements": "dict",
            "default": [],
            "suboptions": dict(
                installation_options(units),
                remotes=resource("The installation's remotes.", "flatpak_remote", units, INSTALLATION),
                apps=resource(
                    "The installation's apps and runtimes. Items that differ only in their refs are one resource: one "
                    "C(flatpak install) (or C(uninstall)) for all of them.",
                    "flatpak",
                    units,
                    INSTALLATION + ("exclusive", "uninstall_unused"),
                ),
                apps_exclusive={
                    "description": [
                        "The installation's apps are exactly the C(apps) not absent: every other app is uninstalled "
                        "(runtimes stay). They must then all come from one remote.",
                    ],
                    "type": "bool",
                    "default": False,
                },
                apps_latest={
                    "description": ["Apps with C(state=present) are updated to their remote's latest commit too."],
                    "type": "bool",
                    "default": False,
                },
                uninstall_unused={
                    "description": ["Also uninstall the runtimes nothing uses any more (C(flatpak uninstall --unused))."],
                    "type": "bool",
                    "default": False,
                },
                overrides=resource("The installation's sandbox overrides.", "flatpak_override", units, INSTALLATION),
                overrides_mode={
                    "description": ["The C(mode) of every override of the installation; unset, each item's own."],
                    "type": "str",
                    "choices": ["merge", "exact"],
                },
            ),
        },
        "secrets": resource(
            "Podman secrets, root's or (with C(user)) a rootless user's, converged before any Quadlet unit.",
            "podman_secret",
            units,
        ),
        "quadlets": resource(
            "Quadlet units, the system's or (with C(user)) a rootless user's, converged after every secret.",
            "quadlet",
            units,
        ),
        "facts": {
            "description": [
                "Return C(ansible_facts.ostree), as M(immutable.hosts.ostree_facts) gathers them, read after the run "
                "from the same reads (in check mode: the host as it is)."
            ],
            "type": "bool",
            "default": False,
        },
    }


def render(units: dict) -> str:
    text = yaml.safe_dump({"options": document(units)}, sort_keys=False, default_flow_style=False, width=118)
    return BEGIN + text + END


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when host_state.py is not up to date")
    args = parser.parse_args()
    source = MODULE.read_text()
    start, end = source.index(BEGIN), source.index(END) + len(END)
    wanted = source[:start] + render(unit_options()) + source[end:]
    if args.check:
        if wanted != source:
            print("plugins/modules/host_state.py is not up to date: run python tools/host_state_doc.py", file=sys.stderr)
            return 1
        return 0
    MODULE.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
