"""Write the options of ``immutable.hosts.host_state``'s DOCUMENTATION, and the item options of the roles' list
variables in their argument specs, from the unit modules' own documentation; and the workstation role's argument spec
from those of the roles it composes.

The document's schema is the units' argument specs (module_utils/_host_state.py), so its documentation is theirs:
each resource's suboptions are the options ``ansible-doc`` shows for that module (doc fragments merged), minus the
ones the document sets itself.  References to other options (``O(...)``) become code (``C(...)``), since the name
they point to is the unit module's, not a path in this document.

    python tools/host_state_doc.py          # rewrite host_state.py and the roles' meta/argument_specs.yml
    python tools/host_state_doc.py --check  # exit 1 when one is not up to date
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


class Dumper(yaml.SafeDumper):
    """Block sequences indented under their key, as yamllint and the rest of the collection write them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def dump(data: dict, width: int) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=width)


MODULE = ROOT / "plugins/doc_fragments/host_document.py"
BEGIN = "# BEGIN GENERATED OPTIONS (tools/host_state_doc.py)\n"
END = "# END GENERATED OPTIONS\n"
KEEP = ("description", "type", "elements", "choices", "default", "required", "aliases")
OSTREE = ("wait_timeout", "bypass_driver")
INSTALLATION = ("scope", "user", "installation")


def unit_options() -> dict:
    """The options of every unit module as ansible-doc shows them, keyed by module name."""
    modules = ["rebase", "rpm_ostree_packages", "kargs", "update_policy", "rootless_user", "podman_secret", "quadlet"]
    modules += ["flatpak_remote", "flatpak", "flatpak_override", "image_policy", "registry_auth", "rpm_repo", "initramfs"]
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


def override_items(units: dict) -> dict:
    found = resource("The installation's sandbox overrides.", "flatpak_override", units, INSTALLATION)
    mode = found["suboptions"]["mode"]
    del mode["default"]
    mode["description"] = mode["description"] + ["Unset, the installation's C(overrides_mode)."]
    return found


def installation_options(units: dict) -> dict:
    found = suboptions({name: units["flatpak"][name] for name in INSTALLATION})
    found["user"]["aliases"] = ["name"]
    return found


def document(units: dict) -> dict:
    ostree_common = suboptions(units["kargs"], ())
    return {
        "os": {
            "description": [
                "The operating system: the image trust, registry credentials and package repositories it needs, what "
                "the host follows, its layered packages and base overrides, its kernel arguments, its initramfs and "
                "its automatic updates. Every change to the deployment stacks on one pending deployment.",
                "Trust, credentials and repositories converge first, so that the rebase and the layering that need "
                "them find them; a check plans the rebase against the policy C(trust) would install, and layering "
                "against the repositories C(repos) would add (without asking rpm-ostree's C(--dry-run), which cannot "
                "see them yet; the result warns).",
                "A rebase onto an ostree ref (with rpm-ostree) layers C(packages.name) in the same transaction.",
            ],
            "type": "dict",
            "suboptions": {
                "trust": resource(
                    "Entries of the image signature policy (C(/etc/containers/policy.json)), with their keys and "
                    "C(registries.d) files, in order (a global default C(reject) first, then the scopes it trusts).",
                    "image_policy",
                    units,
                ),
                "registry_auth": resource(
                    "Credentials rpm-ostree and bootc use to pull from a registry (C(/etc/ostree/auth.json)).",
                    "registry_auth",
                    units,
                    ("scope", "user"),
                ),
                "repos": resource(
                    "Package repositories (C(/etc/yum.repos.d)) and COPR projects layering reads.", "rpm_repo", units
                ),
                "rebase": dict(
                    resource("The ref or image the host follows.", "rebase", units, OSTREE + ("install",), many=False),
                ),
                "packages": resource("Layered packages and base overrides.", "rpm_ostree_packages", units, OSTREE, many=False),
                "kargs": resource("Kernel arguments, one entry per state.", "kargs", units, OSTREE),
                "initramfs": resource(
                    "Client-side initramfs regeneration, its dracut arguments and the C(/etc) files it carries.",
                    "initramfs",
                    units,
                    OSTREE,
                    many=False,
                ),
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
                "Rootless users, each with its Podman secrets, registry credentials and Quadlet units. Each takes the "
                "options of M(immutable.hosts.rootless_user), and C(secrets), C(registry_auth) and C(quadlets).",
            ],
            "type": "list",
            "elements": "dict",
            "default": [],
            "suboptions": dict(
                suboptions(units["rootless_user"]),
                secrets=resource("The user's Podman secrets.", "podman_secret", units, ("user",)),
                registry_auth=resource(
                    "The user's registry credentials (C(containers/auth.json)), what rootless Podman pulls with.",
                    "registry_auth",
                    units,
                    ("scope", "user"),
                ),
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
                overrides=override_items(units),
                overrides_mode={
                    "description": ["The C(mode) of an override item that names none."],
                    "type": "str",
                    "choices": ["merge", "exact"],
                    "default": "merge",
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
    }


def render(units: dict) -> str:
    text = dump({"options": document(units)}, 118)
    return BEGIN + text + END


# --- the roles' argument specs: the items of their list variables are the units' resources -------------------------

ROLE_BEGIN = "# BEGIN GENERATED ITEM OPTIONS %s (tools/host_state_doc.py)"
ROLE_END = "# END GENERATED ITEM OPTIONS %s"


def role_options(units: dict, option: dict) -> dict:
    """The argument spec form (``options`` where module docs say ``suboptions``)."""
    found = {key: value for key, value in option.items() if key != "suboptions"}
    if "suboptions" in option:
        found["options"] = {name: role_options(units, sub) for name, sub in option["suboptions"].items()}
    return found


def role_items(units: dict) -> dict:
    """{(role, variable): the options of one item}."""
    whole = document(units)
    flatpak, system = whole["flatpak"]["suboptions"], whole["os"]["suboptions"]
    items = {
        ("os_image", "os_image_trust"): system["trust"]["suboptions"],
        ("os_image", "os_image_registry_auth"): system["registry_auth"]["suboptions"],
        ("os_image", "os_image_repos"): system["repos"]["suboptions"],
        ("os_image", "os_image_initramfs"): system["initramfs"]["suboptions"],
        ("rootless_podman", "rootless_podman_users"): suboptions(units["rootless_user"]),
        ("rootless_podman", "rootless_podman_secrets"): suboptions(units["podman_secret"]),
        ("rootless_podman", "rootless_podman_quadlets"): suboptions(units["quadlet"]),
        ("flatpak", "flatpak_remotes"): flatpak["remotes"]["suboptions"],
        ("flatpak", "flatpak_apps"): flatpak["apps"]["suboptions"],
        ("flatpak", "flatpak_overrides"): flatpak["overrides"]["suboptions"],
    }
    user = {"name": {"description": ["The user's login name."], "type": "str", "required": True}}
    for key in ("remotes", "apps", "apps_exclusive", "overrides"):
        user[key] = flatpak[key]
    items[("flatpak", "flatpak_users")] = user
    return {key: {name: role_options(units, value) for name, value in spec.items()} for key, spec in items.items()}


def fill_role(text: str, variable: str, options: dict) -> str:
    begin, end = ROLE_BEGIN % variable, ROLE_END % variable
    start = text.index(begin)
    line_start = text.rindex("\n", 0, start) + 1
    indent = text[line_start:start]
    stop = text.index(end, start)
    body = dump({"options": options}, 118 - len(indent))
    body = "".join(indent + line + "\n" for line in body.splitlines())
    return text[:start] + begin + "\n" + body + indent + text[stop:]


WORKSTATION = ROOT / "roles/workstation/meta/argument_specs.yml"
WORKSTATION_BEGIN = "# BEGIN GENERATED ROLE OPTIONS (tools/host_state_doc.py)"
WORKSTATION_END = "# END GENERATED ROLE OPTIONS"
COMPOSED_ROLES = ("os_image", "flatpak", "rootless_podman")


def first_sentence(description) -> str:
    text = description[0] if isinstance(description, list) else description
    head = re.split(r"(?<=[a-z)])\. (?=[A-Z])", text, maxsplit=1)[0]
    return head if head.endswith(".") else head + "."


def fill_workstation(text: str, role_specs: dict) -> str:
    """workstation's argument spec holds the variables of the roles it composes, each with its owner's type, choices
    and default and the first sentence of its description; the options of their list items are not repeated here.
    ansible-core sends a role's whole argument spec back with every host's result of the validation task, at a cost
    per string of the spec: the items' options (about 1,800 strings) cost a 10-host drift check about 0.3 s, 15 % of
    it. The items are checked where they are used instead: by the owning role's own argument spec when it runs, and
    by immutable.hosts.host_state's options (the same unit options those roles' item options are generated from)
    before it reads or changes anything."""
    options: dict = {}
    for role in COMPOSED_ROLES:
        for name, spec in yaml.safe_load(role_specs[role])["argument_specs"]["main"]["options"].items():
            owner = "Owned by the immutable.hosts.%s role (C(ansible-doc -t role immutable.hosts.%s))" % (role, role)
            if "options" in spec:
                owner += (
                    ", which documents the options of its items; immutable.hosts.host_state checks them before it"
                    " reads or changes anything"
                )
            options[name] = {"description": ["%s %s." % (first_sentence(spec["description"]), owner)]}
            options[name].update({key: value for key, value in spec.items() if key not in ("description", "options")})
    start = text.index(WORKSTATION_BEGIN)
    indent = text[text.rindex("\n", 0, start) + 1 : start]
    stop = text.index(WORKSTATION_END, start)
    body = dump(options, 118 - len(indent))
    body = "".join(indent + line + "\n" for line in body.splitlines())
    return text[:start] + WORKSTATION_BEGIN + "\n" + body + indent + text[stop:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is not up to date")
    args = parser.parse_args()
    units = unit_options()
    files = {MODULE: MODULE.read_text()}
    source = files[MODULE]
    start, end = source.index(BEGIN), source.index(END) + len(END)
    wanted = {MODULE: source[:start] + render(units) + source[end:]}
    for (role, variable), options in role_items(units).items():
        path = ROOT / "roles" / role / "meta/argument_specs.yml"
        files.setdefault(path, path.read_text())
        wanted[path] = fill_role(wanted.get(path, files[path]), variable, options)
    role_specs = {role: wanted.get(ROOT / "roles" / role / "meta/argument_specs.yml") for role in COMPOSED_ROLES}
    for role, text in role_specs.items():
        if text is None:
            role_specs[role] = (ROOT / "roles" / role / "meta/argument_specs.yml").read_text()
    files[WORKSTATION] = WORKSTATION.read_text()
    wanted[WORKSTATION] = fill_workstation(files[WORKSTATION], role_specs)
    stale = [str(path.relative_to(ROOT)) for path in wanted if wanted[path] != files[path]]
    if args.check:
        if stale:
            print("not up to date: %s; run python tools/host_state_doc.py" % ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    for path in stale:
        (ROOT / path).write_text(wanted[ROOT / path])
    return 0


if __name__ == "__main__":
    sys.exit(main())
