# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Package repositories for layering: one ``[id]`` section in ``/etc/yum.repos.d``, as rpm-ostree (libdnf) reads it,
and its signing key under ``/etc/pki/rpm-gpg/``. :data:`UNIT` is the module immutable.hosts.rpm_repo.

A repository this module creates gets a file of its own (``ID.repo``). One defined elsewhere (Fedora's
``fedora-cisco-openh264`` in ``fedora-cisco-openh264.repo``, a vendor's file) is edited in place: only the options
given change, every other line and comment stays (``common._keyfile.set_values``, values written raw). The files are
INI files as libdnf parses them: ``key=value`` lines in ``[section]`` groups, ``#`` and ``;`` comments, no escapes.

A COPR project (``copr: owner/project``) is the repository file the COPR hub itself serves for the host's release
and architecture (``/coprs/OWNER/PROJECT/repo/fedora-42/dnf.repo?arch=x86_64``), stored where ``dnf copr enable``
stores it (``_copr:HUB:OWNER:PROJECT.repo``, named after its first section), with ``enabled`` and ``priority``
applied on top.  The release is that of the deployment the next change builds on (the merge deployment's
``os-release``), not only the booted one.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_content, check_value, split_lines
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader

REPOS_DIR = reader.REPOS_DIR
KEYS_DIR = "/etc/pki/rpm-gpg"
REPO_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")
URL = re.compile(r"^(https?|ftp|file)://\S+\Z")
PGP_KEY = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----\n[\s\S]+?-----END PGP PUBLIC KEY BLOCK-----")
SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
MARKER = "# Managed by Ansible (immutable.hosts.rpm_repo)."
COPR_HUB = "copr.fedorainfracloud.org"
COPR_PROJECT = re.compile(r"^(?P<owner>@?[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<project>[A-Za-z0-9][A-Za-z0-9_.+-]*)\Z")
COPR_HUB_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?\Z")
COPR_CHROOT = re.compile(r"^(?P<release>[a-z][a-z0-9_.]*-[a-z0-9_.]+)-(?P<arch>[a-z0-9_]+)\Z")
# The architecture names COPR's chroots use (dnf's $basearch) for a kernel's machine name.
BASEARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x", "i686": "i386", "armv7l": "armhfp"}
# Enterprise Linux and its rebuilds: COPR builds for them in its epel-N chroots.
EL_IDS = ("rhel", "centos", "almalinux", "rocky", "ol")
MAX_REPO_FILE = 256 * 1024
# Options COPR's own file sets; with copr, only enabled and priority are ours to change.
NOT_WITH_COPR = ("name", "description", "baseurl", "metalink", "mirrorlist", "gpgcheck", "repo_gpgcheck", "gpgkey", "key", "path")


class RepoError(HostsError, ValueError):
    pass


def parse_sections(text: str) -> dict:
    """section -> {key: value} of a .repo file (the last value of a key wins, as in libdnf)."""
    sections: dict = {}
    current = None
    for line in split_lines(text):
        match = SECTION.match(line)
        if match:
            current = sections.setdefault(match.group("name").strip(), {})
            continue
        stripped = line.strip()
        if current is None or not stripped or stripped.startswith(("#", ";")) or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        current[key.strip()] = value.strip()
    return sections


def render_section(section: str, values: dict) -> str:
    lines = [MARKER, "[%s]" % section] + ["%s=%s" % (k, v) for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def new_section(desired: dict) -> str:
    """The section of a repository that does not exist yet: enabled, and signatures checked unless the options say
    otherwise (also what an image's build context carries)."""
    values = desired["values"]
    if values["baseurl"] is None and values["metalink"] is None and values["mirrorlist"] is None:
        raise RepoError("a new repository needs baseurl, metalink or mirrorlist")
    new = {**values, "name": values["name"] or desired["name"]}
    new["enabled"] = new["enabled"] or "1"
    new["gpgcheck"] = new["gpgcheck"] or "1"
    return render_section(desired["name"], new)


def flag(value: Optional[bool]) -> Optional[str]:
    return None if value is None else ("1" if value else "0")


def same(current: Optional[str], wanted: str) -> bool:
    """libdnf reads booleans as 1/0, yes/no, true/false, on/off; lists split at blanks and commas."""
    if current is None:
        return False
    truth = {"1": "1", "yes": "1", "true": "1", "on": "1", "0": "0", "no": "0", "false": "0", "off": "0"}
    if wanted in ("0", "1") and current.lower() in truth:
        return truth[current.lower()] == wanted
    return re.split(r"[\s,]+", current.strip()) == re.split(r"[\s,]+", wanted.strip())


def parse_os_release(text: Optional[str]) -> dict:
    found = {}
    for line in split_lines(text):
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            found[key.strip()] = value
    return found


def copr_release(os_release: dict) -> Optional[str]:
    """COPR's release part of a chroot for an os-release (``fedora-42``, ``fedora-rawhide``, ``epel-9``), as ``dnf
    copr`` guesses it; None when COPR builds for nothing like it."""
    ident, version = os_release.get("ID", ""), os_release.get("VERSION_ID", "")
    like = os_release.get("ID_LIKE", "").split()
    if ident == "fedora":
        if "rawhide" in (os_release.get("REDHAT_SUPPORT_PRODUCT_VERSION", "").lower(), version.lower()):
            return "fedora-rawhide"
        return "fedora-%s" % version if version.isdigit() else None
    if (ident in EL_IDS or "rhel" in like) and version:
        major = version.split(".", 1)[0]
        return "epel-%s" % major if major.isdigit() else None
    return None


def copr_hub(value: Optional[str]) -> tuple:
    """(base URL, hub name as repository files name it) of a hub given as ``host[:port]`` or ``https://host[:port]``."""
    value = COPR_HUB if value is None else value
    check_value(value, "copr_hub", RepoError)
    if "://" in value:
        if not value.startswith("https://"):
            raise RepoError(
                "copr_hub is reached over https: the repository file it serves names the URL of the key its packages "
                "are checked with, so a file fetched in the clear could name any key; not %r" % value
            )
        value = value[len("https://") :]
    value = value.rstrip("/")
    if not COPR_HUB_NAME.match(value):
        raise RepoError("copr_hub is a host name with an optional port (copr.fedorainfracloud.org), not %r" % value)
    return "https://" + value, value


def copr_file_name(hub: str, owner: str, project: str) -> str:
    """Where ``dnf copr enable`` stores a project's file when the file does not name itself (a group @g is group_g)."""
    owner = "group_" + owner[1:] if owner.startswith("@") else owner
    return "%s/_copr:%s:%s:%s.repo" % (REPOS_DIR, hub, owner, project)


def copr_section(hub: str, owner: str, project: str) -> str:
    """The id COPR gives a project's repository: the hub without its port."""
    owner = "group_" + owner[1:] if owner.startswith("@") else owner
    return "copr:%s:%s:%s" % (hub.split(":", 1)[0], owner, project)


class RpmRepoUnit:
    ARGUMENT_SPEC = dict(
        name=dict(type="str"),
        copr=dict(type="str"),
        copr_hub=dict(type="str"),
        copr_chroot=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        description=dict(type="str"),
        baseurl=dict(type="list", elements="str"),
        metalink=dict(type="str"),
        mirrorlist=dict(type="str"),
        enabled=dict(type="bool"),
        gpgcheck=dict(type="bool"),
        repo_gpgcheck=dict(type="bool"),
        gpgkey=dict(type="list", elements="str", no_log=False),
        key=dict(type="str", no_log=False),
        priority=dict(type="int"),
        path=dict(type="path"),
    )
    MODULE_OPTIONS = dict(
        mutually_exclusive=[("baseurl", "metalink", "mirrorlist"), ("name", "copr")], required_one_of=[("name", "copr")]
    )

    def desired(self, params: dict, host) -> dict:
        if params["copr"] is not None:
            return self.desired_copr(params)
        if params["copr_hub"] is not None or params["copr_chroot"] is not None:
            raise RepoError("copr_hub and copr_chroot are for copr (a COPR project)")
        name = params["name"]
        check_value(name, "name", RepoError)
        if not REPO_ID.match(name):
            raise RepoError("name is a repository id of letters, digits and _.:- (at most 128), not %r" % name)
        for url in (
            (params["baseurl"] or []) + (params["gpgkey"] or []) + [u for u in (params["metalink"], params["mirrorlist"]) if u]
        ):
            check_value(url, "URL", RepoError)
            if not URL.match(url.replace("$releasever", "x").replace("$basearch", "x")):
                raise RepoError("%r is not an http(s)://, ftp:// or file:// URL" % url)
        if params["priority"] is not None and not 1 <= params["priority"] <= 99:
            raise RepoError("priority is between 1 (first) and 99 (the default)")
        key = params["key"]
        if key is not None:
            key = check_content(key.strip() + "\n", "key", RepoError)
            if not PGP_KEY.search(key):
                raise RepoError("key is an ASCII-armored OpenPGP public key (-----BEGIN PGP PUBLIC KEY BLOCK-----)")
        if params["description"] is not None:
            check_value(params["description"], "description", RepoError)
        key_path = "%s/RPM-GPG-KEY-%s" % (KEYS_DIR, name.replace(":", "-")) if key is not None else None
        gpgkey = list(params["gpgkey"] or [])
        if key_path is not None and "file://" + key_path not in gpgkey:
            gpgkey.insert(0, "file://" + key_path)
        values = {
            "name": params["description"],
            "baseurl": " ".join(params["baseurl"]) if params["baseurl"] else None,
            "metalink": params["metalink"],
            "mirrorlist": params["mirrorlist"],
            "enabled": flag(params["enabled"]),
            "gpgcheck": flag(params["gpgcheck"]),
            "repo_gpgcheck": flag(params["repo_gpgcheck"]),
            "gpgkey": " ".join(gpgkey) if gpgkey else None,
            "priority": None if params["priority"] is None else str(params["priority"]),
        }
        return {
            "name": name,
            "state": params["state"],
            "values": values,
            "key": key,
            "key_path": key_path,
            "path": params["path"],
            "copr": None,
        }

    def desired_copr(self, params: dict) -> dict:
        project = params["copr"]
        check_value(project, "copr", RepoError)
        match = COPR_PROJECT.match(project)
        if not match:
            raise RepoError("copr is a COPR project as owner/project (or @group/project), not %r" % project)
        given = [key for key in NOT_WITH_COPR if params.get(key) not in (None, [])]
        if given:
            raise RepoError(
                "with copr, the repository is the file the COPR hub serves; %s cannot be set (only enabled and priority)"
                % ", ".join(given)
            )
        if params["priority"] is not None and not 1 <= params["priority"] <= 99:
            raise RepoError("priority is between 1 (first) and 99 (the default)")
        url, hub = copr_hub(params["copr_hub"])
        chroot = params["copr_chroot"]
        if chroot is not None:
            check_value(chroot, "copr_chroot", RepoError)
            if not COPR_CHROOT.match(chroot):
                raise RepoError("copr_chroot is a COPR chroot as distribution-release-arch (fedora-42-aarch64), not %r" % chroot)
        return {
            "name": copr_section(hub, match.group("owner"), match.group("project")),
            "state": params["state"],
            "values": {
                "enabled": flag(params["enabled"]),
                "priority": None if params["priority"] is None else str(params["priority"]),
            },
            "key": None,
            "key_path": None,
            "path": copr_file_name(hub, match.group("owner"), match.group("project")),
            "copr": {"project": project, "hub": hub, "url": url, "chroot": chroot},
        }

    def read(self, host, desired: dict) -> dict:
        found: dict = {}
        for path in host.glob(REPOS_DIR + "/*.repo"):
            text = host.read_text(path)
            if text is not None:
                found[path] = text
        current = {"files": found, "key": host.read_text(desired["key_path"]) if desired["key_path"] else None}
        if desired["copr"] is not None and desired["state"] == "present":
            current["served"] = read_copr(host, desired["copr"])
        return current

    def plan(self, current: dict, desired: dict) -> Plan:
        if desired["copr"] is not None:
            return plan_copr(current, desired)
        name, values = desired["name"], desired["values"]
        holders = [path for path, text in sorted(current["files"].items()) if name in parse_sections(text)]
        path = desired["path"] or (holders[0] if holders else "%s/%s.repo" % (REPOS_DIR, name))
        others = [p for p in holders if p != path]
        if others:
            raise RepoError(
                "repository %s is also defined in %s; libdnf refuses duplicate ids: remove it there" % (name, ", ".join(others))
            )
        text = current["files"].get(path)
        section = parse_sections(text or "").get(name)
        actions: dict = {"text": None, "remove": False, "key": None}
        if desired["state"] == "absent":
            if section is not None:
                remaining = {k: v for k, v in parse_sections(text).items() if k != name}
                actions["remove"] = not remaining
                actions["text"] = None if not remaining else _without_section(text, name)
        else:
            if section is None:
                actions["text"] = (text + "\n" if text else "") + new_section(desired)
            else:
                wanted = {k: v for k, v in values.items() if v is not None and not same(section.get(k), v)}
                sources = ("baseurl", "metalink", "mirrorlist")
                given = [k for k in sources if values[k] is not None]
                drop = tuple(k for k in sources if given and k not in given and k in section)
                if wanted or drop:
                    actions["text"] = keyfile.set_values(text, name, wanted, remove=drop, raw=True)
            if desired["key"] is not None and current["key"] != desired["key"]:
                actions["key"] = desired["key"]
        after_text = "" if actions["remove"] else (actions["text"] if actions["text"] is not None else text or "")
        diff = [{"before": text or "", "after": after_text, "before_header": path, "after_header": path}]
        if actions["key"] is not None:
            diff.append(
                {
                    "before": current["key"] or "",
                    "after": actions["key"],
                    "before_header": desired["key_path"],
                    "after_header": desired["key_path"],
                }
            )
        after = parse_sections(after_text).get(name)
        return Plan(
            changed=actions["text"] is not None or actions["remove"] or actions["key"] is not None,
            diff=diff,
            actions=dict(actions, path=path),
            result={"path": path, "repo": after, "key_path": desired["key_path"]},
        )

    def report(self, host, plan: Plan, desired: dict) -> None:
        """In check mode, later units of the run (layering) know which repository files this plan writes."""
        if not (host.check_mode and plan.changed):
            return
        actions = plan.actions
        if desired["copr"] is not None:
            for path in actions["remove"]:
                host.assume_file(path, None)
            if actions["write"] is not None:
                host.assume_file(actions["path"], actions["write"])
            return
        if actions["key"] is not None:
            host.assume_file(desired["key_path"], actions["key"])
        if actions["text"] is not None or actions["remove"]:
            host.assume_file(actions["path"], None if actions["remove"] else actions["text"])

    def apply(self, host, plan: Plan, desired: dict) -> None:
        actions = plan.actions
        if desired["copr"] is not None:
            for path in actions["remove"]:
                files.remove_file(host.path(path))
            if actions["write"] is not None:
                files.replace_file(host.path(actions["path"]), actions["write"], 0o644, create_directory=0o755)
            return
        if actions["key"] is not None:
            files.replace_file(host.path(desired["key_path"]), actions["key"], 0o644, create_directory=0o755)
        if actions["text"] is not None:
            files.replace_file(host.path(actions["path"]), actions["text"], create_directory=0o755)
        elif actions["remove"]:
            files.remove_file(host.path(actions["path"]))


def copr_chroot(host) -> str:
    """The chroot of the release the next deployment is built from: the merge deployment's os-release on an
    rpm-ostree host, else the running system's."""
    text = None
    if reader.is_ostree_booted(host) and host.which("rpm-ostree"):
        deployment = reader.merge(reader.status(host))
        tree = reader.deployment_dir(deployment["osname"], deployment["checksum"], deployment["serial"])
        text = host.read_text(tree + "/usr/lib/os-release")
    if text is None:
        text = host.read_text("/etc/os-release") or host.read_text("/usr/lib/os-release")
    os_release = parse_os_release(text)
    release, arch = copr_release(os_release), BASEARCH.get(host.machine())
    if release is None or arch is None:
        raise RepoError(
            "COPR builds for no chroot like this host's %s (%s, %s); give copr_chroot (fedora-42-x86_64)"
            % (
                "release" if release is None else "architecture",
                os_release.get("PRETTY_NAME") or os_release.get("ID") or "no os-release",
                host.machine(),
            )
        )
    return "%s-%s" % (release, arch)


def read_copr(host, copr: dict) -> dict:
    """The repository file the hub serves for the project and chroot: {chroot, url, text}."""
    chroot = copr["chroot"] or copr_chroot(host)
    release, arch = COPR_CHROOT.match(chroot).group("release", "arch")
    url = "%s/coprs/%s/repo/%s/dnf.repo?arch=%s" % (copr["url"], copr["project"], release, arch)
    try:
        data = host.fetch(url, MAX_REPO_FILE + 1)
    except OSError as exc:
        code = getattr(exc, "code", None)
        if code == 404:
            raise RepoError(
                "the COPR hub has no %s repository for %s (404 from %s): the project does not exist there or does not "
                "build for %s; check the project's chroots, or give copr_chroot" % (chroot, copr["project"], url, chroot)
            ) from None
        raise RepoError("cannot read %s: %s" % (url, getattr(exc, "reason", None) or exc)) from None
    if len(data) > MAX_REPO_FILE:
        raise RepoError("%s is larger than %d bytes; it is not a repository file" % (url, MAX_REPO_FILE))
    try:
        text = check_content(data.decode("utf-8"), "the file %s serves" % url, RepoError)
    except UnicodeDecodeError:
        raise RepoError("%s is not UTF-8 text; it is not a repository file" % url) from None
    sections = list(parse_sections(text))
    if not sections or not all(REPO_ID.match(section) for section in sections):
        raise RepoError("%s is not a repository file (no [id] sections of letters, digits and _.:-)" % url)
    return {"chroot": chroot, "url": url, "text": text if text.endswith("\n") else text + "\n", "sections": sections}


def plan_copr(current: dict, desired: dict) -> Plan:
    """The file COPR serves (with enabled on every repository of it and priority on the project's) where dnf puts
    it; ``absent`` removes every file holding the project's repository."""
    served = current.get("served")
    path, name = desired["path"], desired["name"]
    if served is not None:
        first = served["sections"][0]
        if first.startswith("copr:"):
            name, path = first, "%s/_%s.repo" % (REPOS_DIR, first)
    holders = [p for p, text in sorted(current["files"].items()) if name in parse_sections(text) or p == path]
    actions: dict = {"write": None, "remove": []}
    diff = []
    if desired["state"] == "absent":
        actions["remove"] = holders
        diff = [{"before": current["files"][p], "after": "", "before_header": p, "after_header": p} for p in holders]
        return Plan(
            changed=bool(holders),
            diff=diff or [{"before": "", "after": "", "before_header": path, "after_header": path}],
            actions=actions,
            result={"path": path, "repo": None, "key_path": None, "copr": {"project": desired["copr"]["project"]}},
        )
    others = [p for p in holders if p != path]
    if others:
        raise RepoError(
            "repository %s is also defined in %s; libdnf refuses duplicate ids: remove that file (an older dnf copr "
            "enable may have left it)" % (name, ", ".join(others))
        )
    text = served["text"]
    enabled, priority = desired["values"]["enabled"], desired["values"]["priority"]
    for section in served["sections"]:
        wanted = {}
        if enabled is not None:
            wanted["enabled"] = enabled
        if priority is not None and section == name:
            wanted["priority"] = priority
        if wanted:
            text = keyfile.set_values(text, section, wanted, raw=True)
    before = current["files"].get(path)
    if before != text:
        actions["write"] = text
    return Plan(
        changed=actions["write"] is not None,
        diff=[{"before": before or "", "after": text, "before_header": path, "after_header": path}],
        actions=dict(actions, path=path),
        result={
            "path": path,
            "repo": parse_sections(text).get(name),
            "key_path": None,
            "copr": {"project": desired["copr"]["project"], "chroot": served["chroot"], "url": served["url"]},
        },
    )


def _without_section(text: str, section: str) -> str:
    out, skipping = [], False
    for line in split_lines(text):
        match = SECTION.match(line)
        if match:
            skipping = match.group("name").strip() == section
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


UNIT = RpmRepoUnit()
