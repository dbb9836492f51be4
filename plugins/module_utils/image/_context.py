# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A host's document (``immutable.hosts.host_state``'s options) compiled into a container build context for a
bootable image: ``Containerfile`` and the files the image carries under ``tree/``.

The document's resources are the ones ``host_state`` converges (``_host_state.resources``), each compiled to where
an image-based system reads it:

- the image: ``FROM`` the document's base image, by digest;
- layered packages: installed, and base packages removed, by the image's package manager in one ``RUN`` each;
- package repositories and their keys: ``/etc/yum.repos.d``, ``/etc/pki/rpm-gpg`` (the build installs from them);
- kernel arguments to have: ``/usr/lib/bootc/kargs.d/*.toml`` (bootc's own);
- system Quadlet units: ``/usr/share/containers/systemd``, and the images of ``.container`` and ``.image`` units as
  logically bound images (links in ``/usr/lib/bootc/bound-images.d``, pulled by bootc with the image);
- a user's Quadlet units, when ``user_ids`` gives the user's UID: ``/etc/containers/systemd/users/UID``, where
  Podman's generator finds them for that user;
- the trust: ``/etc/containers/policy.json`` (the document's entries over the policy containers-common ships), the
  keys it names and the scopes' ``registries.d`` files;
- the update policy: ``/etc/rpm-ostreed.conf``, the update timer enabled or disabled in the build, and its drop-ins;
- system Flatpak remotes: ``.flatpakrepo`` files in ``/etc/flatpak/remotes.d`` (Flatpak adds them);
- system Flatpak apps: Flatpak's own preinstall files (``/usr/share/flatpak/preinstall.d``, Flatpak 1.17 and
  later), else a service that installs them at first boot, as image-based desktops do;
- system Flatpak overrides: ``tmpfiles.d`` lines that write them under ``/var/lib/flatpak/overrides`` (``/var`` is
  the host's, not the image's) at every boot.

What an image cannot carry stays at runtime, and the result says which resource and why: secrets and credentials,
users (their ids, subordinate ids and linger are the host's), a user's Flatpak installation, the Quadlet units of a
user whose UID is not given, the update gate (a program under ``/usr/local``, which is ``/var`` on an image-based
host), the initramfs, arguments or packages to remove from a host, and what depends on the host's current state.

Every step is argv (``RUN ["dnf", ...]``), every file is sorted and free of dates, so the same document gives the same
context byte for byte.

Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
from typing import Any, Optional

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.immutable.hosts.plugins.module_utils import _host_state as document_schema
from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.containers import _policy as policy
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _apps as apps
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _overrides as overrides
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _remotes as remotes
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._names import flatpak_arch
from ansible_collections.immutable.hosts.plugins.module_utils.image._tree import (
    MARKER,
    MARKER_FILE,
    ContextError,
    context_digest,
    read_tree,
)
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _imageref as imageref
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _kargs as kargs
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _packages as packages
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as ostree_reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _registry as registry
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _repos as repos
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _update_policy as update_policy
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet as quadlet
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet_keys as quadlet_keys

CONTAINERFILE = "Containerfile"
TREE = "tree"
KARGS_FILE = "/usr/lib/bootc/kargs.d/50-immutable-hosts.toml"
SYSTEM_QUADLETS = "/usr/share/containers/systemd"
USER_QUADLETS = "/etc/containers/systemd/users"
BOUND_IMAGES = "/usr/lib/bootc/bound-images.d"
BOUND_STORAGE = "--storage-opt=additionalimagestore=/usr/lib/bootc/storage"
FLATPAK_REMOTES = "/etc/flatpak/remotes.d"
PREINSTALL = "/usr/share/flatpak/preinstall.d"
FIRST_BOOT_UNIT = "immutable-hosts-flatpak-install.service"
FIRST_BOOT_DIR = "/usr/lib/systemd/system"
FIRST_BOOT_STAMP = "/var/lib/immutable-hosts/flatpak-install.done"
OVERRIDES_TMPFILES = "/usr/lib/tmpfiles.d/immutable-hosts-flatpak-overrides.conf"
OVERRIDES_DIR = "/var/lib/flatpak/overrides"
PACKAGE_MANAGERS = ("dnf", "rpm-ostree")
BOUND_KINDS = ("container", "image")
DOCUMENT_KEYS = ("os", "users", "flatpak", "secrets", "quadlets")
# The policy containers-common ships (containers-policy.json(5)): the image's policy.json is the document's trust over it.
DEFAULT_POLICY = {
    "default": [{"type": "insecureAcceptAnything"}],
    "transports": {"docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}},
}


# --- text formats -----------------------------------------------------------------------------------------------------


def toml_string(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"%s"' % "".join(ch if ord(ch) >= 0x20 and ch != "\x7f" else "\\u%04x" % ord(ch) for ch in escaped)


def render_kargs(args: list) -> str:
    return "# %s\nkargs = [%s]\n" % (MARKER, ", ".join(toml_string(arg) for arg in args))


def tmpfiles_argument(text: str) -> str:
    """``text`` as the argument of a tmpfiles.d line: C escapes for what would end or split the field, ``%%`` for
    specifiers (tmpfiles.d(5))."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "%":
            out.append("%%")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch in " \"'" or ord(ch) < 0x20 or ch == "\x7f":
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def instruction(keyword: str, argv: list) -> str:
    """A Containerfile instruction in exec form: argv as a JSON array, no shell."""
    return "%s %s" % (keyword, json.dumps(argv))


def label_line(labels: dict) -> Optional[str]:
    if not labels:
        return None
    return "LABEL " + " \\\n      ".join("%s=%s" % (json.dumps(key), json.dumps(str(labels[key]))) for key in sorted(labels))


def render_flatpakrepo(name: str, remote: dict, key: Optional[bytes]) -> str:
    lines = ["# " + MARKER, "[Flatpak Repo]", "Version=1", "Url=%s" % remote["url"]]
    for field, value in (("Title", remote["title"]), ("Comment", remote["comment"])):
        if value:
            lines.append("%s=%s" % (field, value))
    if key:
        lines.append("GPGKey=%s" % base64.b64encode(key).decode("ascii"))
    if remote["collection_id"]:
        lines.append("DeployCollectionID=%s" % remote["collection_id"])
    if remote["filter"]:
        lines.append("Filter=%s" % remote["filter"])
    return "\n".join(lines) + "\n"


# --- the compiler -----------------------------------------------------------------------------------------------------


class Context:
    """What a build context holds: ``files`` (a path in the image -> (text, mode)), the Containerfile's steps after
    the files are copied, the links for bound images, and the resources that stay at runtime."""

    def __init__(self) -> None:
        self.files: dict = {}
        self.install: list = []
        self.remove: list = []
        self.bound: list = []
        self.enable: list = []
        self.disable: list = []
        self.runtime: list = []
        self.units: dict = {}  # Quadlet units to validate with the generator: name -> (text, service)
        self.user_units: dict = {}  # and users' units, which the generator reads in its user mode

    def add(self, path: str, text: str, mode: int = 0o644) -> None:
        if path in self.files and self.files[path][0] != text:
            raise ContextError("two resources of the document write %s" % path)
        self.files[path] = (text, mode)

    def stays(self, resource: Any, reason: str, part: Optional[str] = None) -> None:
        name = document_schema.label(resource) + (" (%s)" % part if part else "")
        self.runtime.append({"resource": name, "module": resource.module, "reason": reason})


class ImageFiles:
    """The image's files as a unit's ``read`` sees a host's: what the context holds so far, over the defaults a base
    image has (``defaults``: path -> text), so a unit's own plan computes a file of the image exactly as it would a
    host's."""

    check_mode = True

    def __init__(self, context: Context, defaults: dict) -> None:
        self.context = context
        self.defaults = defaults

    def read_text(self, path: str) -> Optional[str]:
        if path in self.context.files:
            return self.context.files[path][0]
        return self.defaults.get(path)

    def glob(self, pattern: str) -> list:
        names = set(self.context.files) | set(self.defaults)
        return sorted(name for name in names if fnmatch.fnmatchcase(name, pattern) and self.read_text(name) is not None)

    def assume_file(self, path: str, text: Optional[str], mode: int = 0o644) -> None:
        """What a unit's check-mode ``report`` leaves for later units, kept in the image; a later unit of the document
        rewrites what an earlier one wrote (one policy.json for every scope)."""
        if text is None:
            self.context.files.pop(path, None)
        else:
            self.context.files[path] = (text, mode)


def base_image(document: dict, given: Optional[str]) -> str:
    """The image to build from, by digest: ``given``, else the document's ``os.rebase.image``."""
    rebase = (document.get("os") or {}).get("rebase") or {}
    name = given or rebase.get("image")
    if not name:
        if rebase.get("ref"):
            raise ContextError(
                "the document follows the ostree ref %s; an image is built FROM a container image: give os.rebase.image"
                " or base_image" % rebase["ref"]
            )
        raise ContextError("the document names no image to build from: give os.rebase.image or base_image")
    try:
        reference = imageref.parse_registry_name(name)
    except (HostsError, ValueError) as exc:
        raise ContextError("base image %r: %s" % (name, exc)) from None
    if not reference.digest:
        raise ContextError(
            "base image %s is not pinned by digest (NAME@sha256:...); resolve it first (skopeo inspect --format "
            "'{{.Digest}}' docker://%s) so the same document builds the same image" % (name, name)
        )
    return name


def compile_document(document: dict, options: dict, host: Any) -> dict:
    """The build context of ``document``: ``{"containerfile", "files" (path in the context -> (text, mode)),
    "runtime", "base"}``.  ``options``: ``base_image``, ``package_manager``, ``flatpak_preinstall``,
    ``flatpak_arch``, ``labels``, ``lint``.  ``host`` is the build host's reader: a ``.flatpakrepo`` URL is read
    through it, once."""
    base = base_image(document, options.get("base_image"))
    context = Context()
    arch = options.get("flatpak_arch") or flatpak_arch(host.machine())
    app_lists: dict = {}
    override_lines: list = []
    rebase = (document.get("os") or {}).get("rebase") or {}
    base_backend = "bootc" if rebase.get("backend") == "bootc" else "rpm-ostree"
    user_ids = dict(options.get("user_ids") or {})
    for resource in document_schema.resources(document):
        compile_resource(resource, context, host, arch, app_lists, override_lines, base, base_backend, user_ids)
    if app_lists:
        compile_apps(app_lists, context, bool(options.get("flatpak_preinstall")))
    if override_lines:
        context.add(OVERRIDES_TMPFILES, "# %s\n%s" % (MARKER, "".join(sorted(override_lines))))
    files = {"%s%s" % (TREE, path): value for path, value in context.files.items()}
    containerfile = render_containerfile(base, context, options)
    files[CONTAINERFILE] = (containerfile, 0o644)
    return {
        "base": base,
        "files": files,
        "containerfile": containerfile,
        "runtime": context.runtime,
        "units": context.units,
        "user_units": context.user_units,
    }


def compile_resource(
    resource: Any,
    context: Context,
    host: Any,
    arch: str,
    app_lists: dict,
    override_lines: list,
    base: str,
    base_backend: str,
    user_ids: dict,
) -> None:
    params = resource.params
    module = resource.module
    if module in ("podman_secret", "registry_auth"):
        context.stays(resource, "a secret or credential never goes into an image")
    elif module == "rootless_user":
        context.stays(resource, "users, their subordinate ids and linger are the host's")
    elif module == "rebase":
        return  # the image itself: FROM
    elif module == "rpm_ostree_packages":
        compile_packages(resource, context)
    elif module == "rpm_repo":
        compile_repo(resource, context, host, base)
    elif module == "kargs":
        if params["state"] != "present":
            context.stays(resource, "bootc's kargs.d adds kernel arguments; removing them is a change to a host")
        else:
            context.add(KARGS_FILE, render_kargs(kargs.validate(list(params["args"]))))
    elif module == "quadlet":
        compile_quadlet(resource, context, user_ids)
    elif module == "image_policy":
        compile_trust(resource, context)
    elif module == "update_policy":
        compile_update_policy(resource, context, host, base_backend)
    elif module in ("flatpak_remote", "flatpak", "flatpak_override") and (params.get("user") or params.get("scope") == "user"):
        context.stays(resource, "a user's Flatpak installation lives in the user's home, on the host")
    elif module in ("flatpak_remote", "flatpak", "flatpak_override") and params.get("installation"):
        context.stays(resource, "only the default system installation is compiled into images")
    elif module == "flatpak_remote":
        compile_remote(resource, context, host)
    elif module == "flatpak":
        if params["state"] == "absent" or params.get("exclusive") or params.get("uninstall_unused"):
            context.stays(resource, "removing apps is a change to a host's installation")
        else:
            refs = apps.parse_refs(params["name"], params["arch"] or arch)
            app_lists.setdefault(params["remote"], []).extend(refs)
    elif module == "flatpak_override":
        compile_override(resource, override_lines, host)
    else:
        context.stays(resource, "%s is converged at runtime" % module)


def compile_packages(resource: Any, context: Context) -> None:
    params = resource.params
    if params["state"] == "absent":
        context.stays(resource, "removing layered packages is a change to a host")
        return
    local = [name for name in params["name"] if packages.is_local(name)]
    if local or params["override_replace"]:
        context.stays(
            resource,
            "local RPM files (%s) are the controller's, not the build's" % ", ".join(local or params["override_replace"]),
        )
        return
    packages.validate_names(params["name"])
    packages.validate_names(params["override_remove"], "override_remove")
    context.install.extend(name for name in params["name"] if name not in context.install)
    context.remove.extend(name for name in params["override_remove"] if name not in context.remove)


def compile_repo(resource: Any, context: Context, host: Any, base: str) -> None:
    params = resource.params
    if params["state"] == "absent" or params["path"]:
        context.stays(resource, "removals and repositories in another file are resolved on the host")
        return
    desired = repos.UNIT.desired(params, None)
    if desired["copr"] is not None:
        compile_copr(desired, context, host, base)
        return
    context.add("%s/%s.repo" % (repos.REPOS_DIR, desired["name"]), repos.new_section(desired))
    if desired["key"] is not None:
        context.add(desired["key_path"], desired["key"])


def base_chroot(host: Any, base: str) -> str:
    """The COPR chroot of the image: the Fedora release its base names (the ``org.opencontainers.image.version``
    label Fedora's images carry, ``42.20250416.0``) and the build host's architecture, read once per run."""

    def read() -> str:
        found = registry.skopeo_inspect(host, base, error=ContextError)
        if found is None:
            raise ContextError("the registry has no base image %s" % base)
        labels = found.get("Labels") or {}
        version = str(labels.get("org.opencontainers.image.version") or "")
        release, arch = version.split(".", 1)[0], repos.BASEARCH.get(host.machine())
        if not release.isdigit() or arch is None:
            raise ContextError(
                "the base image %s names no Fedora release in its org.opencontainers.image.version label (%r), or "
                "COPR builds for no %s: give the project's copr_chroot (fedora-42-x86_64)" % (base, version, host.machine())
            )
        return "fedora-%s-%s" % (release, arch)

    return host.once(("image-context-chroot", base), read)


def compile_copr(desired: dict, context: Context, host: Any, base: str) -> None:
    """A COPR project as ``dnf copr enable`` leaves it: the file the hub serves for the image's chroot, where dnf puts
    it, with the document's enabled and priority; the image's own dnf then installs the project's packages."""
    copr = dict(desired["copr"])
    if copr["chroot"] is None:
        copr["chroot"] = base_chroot(host, base)
    served = repos.read_copr(host, copr)
    plan = repos.plan_copr({"served": served, "files": {}}, desired)
    context.add(plan.result["path"], plan.actions["write"])


def compile_quadlet(resource: Any, context: Context, user_ids: dict) -> None:
    params = dict(resource.params)
    user = params.get("user")
    if user and user not in user_ids:
        context.stays(
            resource,
            "Quadlet reads a user's units from /etc/containers/systemd/users/UID, and the UID is the host's: give it in "
            "user_ids to carry the unit in the image",
        )
        return
    if params["state"] == "absent":
        context.stays(resource, "removing a unit is a change to a host")
        return
    kind = params["kind"]
    name = quadlet_keys.file_name(quadlet_keys.validate_name(params["name"], kind), kind)
    section = dict(params.get(kind) or {})
    # Logically bound images are pulled into bootc's store, root's: a user's containers pull into the user's own.
    bound = not user and kind in BOUND_KINDS and params["content"] is None and section.get("image")
    if bound:
        # bootc pulls a logically bound image with the OS image, into its own store; the unit reads it from there.
        extra = section.get("global_args") or []
        extra = [extra] if isinstance(extra, str) else list(extra)
        if BOUND_STORAGE not in extra:
            extra.append(BOUND_STORAGE)
        section["global_args"] = extra
        params[kind] = section
    if user:
        # The user's systemd runs the generator over this directory (Podman 5); the user's own
        # ~/.config/containers/systemd, where the module writes at runtime, comes first and shadows it.
        text = quadlet.desired_text(params, "user")
        context.add("%s/%d/%s" % (USER_QUADLETS, user_ids[user], name), text)
        if params["validate"]:
            sections = quadlet_keys.parse_unit(text)
            context.user_units[name] = (text, quadlet_keys.service_name(params["name"], kind, sections))
        return
    text = quadlet.desired_text(params, "system")
    context.add("%s/%s" % (SYSTEM_QUADLETS, name), text)
    if params["validate"]:
        sections = quadlet_keys.parse_unit(text)
        context.units[name] = (text, quadlet_keys.service_name(params["name"], kind, sections))
    if bound:
        context.bound.append(name)


def compile_trust(resource: Any, context: Context) -> None:
    """One entry of the trust, planned by ``image_policy`` itself on the image's files: the key where the policy
    names it, the scope's ``registries.d`` file, and ``policy.json``, which every entry of the document rewrites in
    turn over the policy containers-common ships (a base image's own entries are not kept: trust is the document's)."""
    params = resource.params
    if params["policy_path"] != policy.POLICY:
        context.stays(resource, "a policy in another file than %s is the host's" % policy.POLICY)
        return
    if params["key_path"] is not None and params["key"] is None:
        context.stays(resource, "the key is a file on the host (key_path); give key, its text, to carry it in the image")
        return
    files_ = ImageFiles(context, {policy.POLICY: policy.render_policy(DEFAULT_POLICY, "    ")})
    desired = policy.UNIT.desired(dict(params), None)
    plan = policy.UNIT.plan(policy.UNIT.read(files_, desired), desired)
    # What the unit assumes of a host after a check is what the image gets.
    policy.UNIT.report(files_, plan, desired)
    files_.assume_file(policy.POLICY, files_.read_text(policy.POLICY))


def compile_update_policy(resource: Any, context: Context, host: Any, backend: str) -> None:
    """The update policy as ``update_policy`` plans it on a host with no settings of its own: ``rpm-ostreed.conf``
    (rpm-ostree's daemon settings), the update timer enabled or disabled in the build, the window's drop-in and the
    service's; the update gate's program lives under ``/usr/local``, which is ``/var`` on an image-based host (an
    image never updates it), so the gated conditions stay at runtime."""
    params = dict(resource.params)
    desired = update_policy.UNIT.desired(params, None)
    if desired["path"] != ostree_reader.RPM_OSTREED_CONF:
        context.stays(resource, "rpm-ostreed.conf in another place is the host's")
        return
    update_policy.check_window(host, desired["window"])
    if backend == "bootc":
        given = [key for key in update_policy.DAEMON_SETTINGS if desired[key] is not None]
        if given:
            raise ContextError(
                "%s: settings of rpm-ostreed.conf, and the document's hosts follow their image with bootc (no "
                "rpm-ostree); give timer_enabled only" % ", ".join(given)
            )
        timer = update_policy.BOOTC_TIMER
    else:
        timer = update_policy.TIMER
        # Every setting given, written even where it is rpm-ostree's default: a base image may set its own.
        values = {key: value for key, value in update_policy.daemon_values(desired).items() if value is not None}
        if values:
            context.add(desired["path"], "# %s\n%s" % (MARKER, keyfile.set_values("", "Daemon", values)))
    if desired["timer_enabled"] is not None:
        (context.enable if desired["timer_enabled"] else context.disable).append(timer)
    gated = [key for key in ("skip_metered", "skip_user_sessions") if desired[key]]
    if gated:
        context.stays(
            resource,
            "the update gate is a program under /usr/local, /var on an image-based host, which no image updates",
            part=", ".join(gated),
        )
    ungated = dict(desired, skip_metered=None, skip_user_sessions=None)
    dropins = update_policy.plan_dropins({}, ungated, timer, update_policy.PYTHON)
    for path, text in sorted(dropins["changes"].items()):
        if text is not None:
            context.add(path, text)


def compile_remote(resource: Any, context: Context, host: Any) -> None:
    params = resource.params
    if params["state"] == "absent":
        context.stays(resource, "removing a remote is a change to a host's installation")
        return
    remote, key, _repo_text = remotes.desired_remote(params, host)
    unsupported = [
        option
        for option, value in (
            ("priority", params["priority"] is not None),
            ("enabled=false", not params["enabled"]),
            ("gpg_verify=false", not params["gpg_verify"]),
            ("filter (a file of the host)", params["filter"] is not None),
        )
        if value
    ]
    if unsupported:
        context.stays(resource, "a .flatpakrepo in remotes.d cannot say %s" % ", ".join(unsupported))
        return
    context.add("%s/%s.flatpakrepo" % (FLATPAK_REMOTES, params["name"]), render_flatpakrepo(params["name"], remote, key))


def compile_override(resource: Any, override_lines: list, host: Any) -> None:
    """The whole override file, written at every boot: in an image the document's override is the file."""
    desired = overrides.UNIT.desired(resource.params, host)
    if desired["state"] == "absent":
        raise ContextError("%s: an image writes overrides, it does not remove one" % document_schema.label(resource))
    text = overrides.plan_override(overrides.parse_override(""), desired["options"], "exact", "present")["text"]
    override_lines.append("f+ %s/%s 0644 root root - %s\n" % (OVERRIDES_DIR, desired["name"], tmpfiles_argument(text)))


def install_argv(remote: Optional[str], refs: list) -> list:
    """One ``flatpak install`` of one remote's refs: a ref without a branch by its ID (the remote's default branch),
    with ``--arch`` when it is not the machine's."""
    argv = ["/usr/bin/flatpak", "install", "--system", "--noninteractive", "--or-update"]
    arches = sorted({ref["arch"] for ref in refs if not ref["branch"]})
    if len(arches) == 1:
        argv.append("--arch=%s" % arches[0])
    argv += [remote] if remote else []
    for ref in refs:
        argv.append("%s/%s/%s/%s" % (ref["kind"] or "app", ref["id"], ref["arch"], ref["branch"]) if ref["branch"] else ref["id"])
    return argv


def compile_apps(app_lists: dict, context: Context, preinstall: bool) -> None:
    if preinstall:
        for remote in sorted(app_lists, key=str):
            for ref in app_lists[remote]:
                lines = ["# " + MARKER, "[Flatpak Preinstall %s]" % ref["id"]]
                if ref["branch"]:
                    lines.append("Branch=%s" % ref["branch"])
                if ref["kind"] == "runtime":
                    lines.append("IsRuntime=true")
                context.add("%s/%s.preinstall" % (PREINSTALL, ref["id"]), "\n".join(lines) + "\n")
        return
    lines = [
        "# " + MARKER,
        "[Unit]",
        "Description=Install the Flatpak apps this image lists",
        "Wants=network-online.target",
        "After=network-online.target",
        "ConditionPathExists=!%s" % FIRST_BOOT_STAMP,
        "",
        "[Service]",
        "Type=oneshot",
        "StateDirectory=immutable-hosts",
    ]
    for remote in sorted(app_lists, key=str):
        groups: dict = {}
        for ref in app_lists[remote]:
            groups.setdefault(ref["arch"] if not ref["branch"] else "", []).append(ref)
        for key in sorted(groups):
            lines.append("ExecStart=" + " ".join(install_argv(remote, groups[key])))
    lines += ["ExecStartPost=/usr/bin/touch %s" % FIRST_BOOT_STAMP, "", "[Install]", "WantedBy=multi-user.target"]
    context.add("%s/%s" % (FIRST_BOOT_DIR, FIRST_BOOT_UNIT), "\n".join(lines) + "\n")
    context.enable.append(FIRST_BOOT_UNIT)


def render_containerfile(base: str, context: Context, options: dict) -> str:
    manager = options.get("package_manager") or "dnf"
    lines = ["# " + MARKER, "FROM %s" % base]
    given = dict(options.get("labels") or {})
    if context.install:
        # What the image provides of the document: a host that follows it (image mode) does not layer these.
        given[registry.PACKAGES_LABEL] = registry.packages_label(context.install)
    labels = label_line(given)
    if labels:
        lines.append(labels)
    if context.files:
        lines.append("COPY %s/ /" % TREE)
    if context.remove:
        if manager == "dnf":
            lines.append(instruction("RUN", ["dnf", "-y", "remove", *context.remove]))
        else:
            lines.append(instruction("RUN", ["rpm-ostree", "override", "remove", *context.remove]))
    if context.install:
        if manager == "dnf":
            lines.append(instruction("RUN", ["dnf", "-y", "install", *context.install]))
        else:
            lines.append(instruction("RUN", ["rpm-ostree", "install", "-y", *context.install]))
    if context.install or context.remove:
        lines.append(instruction("RUN", ["dnf", "clean", "all"] if manager == "dnf" else ["rpm-ostree", "cleanup", "-m"]))
    for name in sorted(context.bound):
        lines.append(instruction("RUN", ["ln", "-sf", "%s/%s" % (SYSTEM_QUADLETS, name), "%s/%s" % (BOUND_IMAGES, name)]))
    for unit in context.enable:
        lines.append(instruction("RUN", ["systemctl", "enable", unit]))
    for unit in context.disable:
        lines.append(instruction("RUN", ["systemctl", "disable", unit]))
    if options.get("lint", True):
        lines.append(instruction("RUN", ["bootc", "container", "lint"]))
    return "\n".join(lines) + "\n"


# --- the unit: the context directory, converged like any file a module manages ----------------------------------------


def plan_tree(current: Optional[dict], wanted: dict, path: str) -> Plan:
    """From the directory's files to the context's: files to write, files to remove, and a diff per file."""
    if current and MARKER_FILE not in current:
        raise ContextError(
            "%s holds files and is not a build context this module wrote (no %s): give an empty or new directory"
            % (path, MARKER_FILE)
        )
    current = current or {}
    wanted = dict(wanted, **{MARKER_FILE: (MARKER + "\n", 0o644)})
    write, diff = [], []
    for name in sorted(wanted):
        text, mode = wanted[name]
        data = text.encode("utf-8")
        before = current.get(name)
        if before is not None and before == (data, mode):
            continue
        write.append(name)
        if name != MARKER_FILE:
            diff.append(
                {
                    "before_header": "%s/%s" % (path, name),
                    "after_header": "%s/%s" % (path, name),
                    "before": "" if before is None else before[0].decode("utf-8", "replace"),
                    "after": text,
                }
            )
    remove = sorted(name for name in current if name not in wanted)
    for name in remove:
        diff.append(
            {
                "before_header": "%s/%s" % (path, name),
                "after_header": "/dev/null",
                "before": current[name][0].decode("utf-8", "replace"),
                "after": "",
            }
        )
    return Plan(changed=bool(write or remove), diff=diff, actions={"write": write, "remove": remove, "files": wanted})


def apply_tree(path: str, actions: dict) -> None:
    """Each file written atomically (a new file renamed over the old), stale files removed, then the directories they
    leave empty."""
    for name in actions["write"]:
        text, mode = actions["files"][name]
        parent = os.path.dirname(os.path.join(path, name))
        directory = files.open_directory(parent, create={})
        with directory:
            directory.write(os.path.basename(name), text.encode("utf-8"), mode)
    emptied = set()
    for name in actions["remove"]:
        parent = os.path.dirname(os.path.join(path, name))
        directory = files.open_directory(parent)
        if directory is None:
            continue
        with directory:
            directory.remove(os.path.basename(name))
        emptied.add(parent)
    root = os.path.normpath(path)
    for parent in sorted(emptied, key=len, reverse=True):
        while os.path.normpath(parent) != root and parent.startswith(root + os.sep):
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)


def validate_units(host, units: dict, user: bool = False) -> None:
    if not units:
        return
    generator = quadlet.find_generator(host)
    if generator is None:
        host.warn(
            "no Quadlet generator here (install podman): the image's units %s were not validated" % ", ".join(sorted(units))
        )
        return
    parsed = quadlet.dryrun(host, generator, {name: text for name, (text, _service) in units.items()}, user)
    for name in sorted(units):
        verdict = quadlet.generator_verdict(parsed, name, units[name][1])
        if verdict is not None:
            raise ContextError("the Quadlet generator refuses %s%s: %s" % ("the user unit " if user else "", name, verdict))


class ImageContextUnit:
    """``immutable.hosts.image_context``: the build context of a bootable image, compiled from a host's document."""

    ARGUMENT_SPEC = dict(
        # The document: host_state's own options (the doc fragment immutable.hosts.host_document).
        **{key: value for key, value in document_schema.ARGUMENT_SPEC.items() if key in DOCUMENT_KEYS},
        path=dict(type="path", required=True),
        base_image=dict(type="str"),
        package_manager=dict(type="str", choices=list(PACKAGE_MANAGERS), default="dnf"),
        flatpak_preinstall=dict(type="bool", default=False),
        flatpak_arch=dict(type="str"),
        labels=dict(type="dict", default={}),
        lint=dict(type="bool", default=True),
        user_ids=dict(type="dict", default={}),
    )
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, host) -> dict:
        if not os.path.isabs(params["path"]):
            raise ContextError("path is an absolute directory, not %r" % params["path"])
        for key, value in params["labels"].items():
            if not isinstance(value, (str, int, float, bool)) or not str(key).strip():
                raise ContextError("labels map names to strings; %r is not one" % (key,))
        user_ids = {}
        for key, value in params["user_ids"].items():
            try:
                uid = int(value)
            except (TypeError, ValueError):
                uid = -1
            if isinstance(value, bool) or uid < 1 or str(uid) != str(value).strip():
                raise ContextError("user_ids maps user names to their UIDs (numbers above 0); %r: %r is not one" % (key, value))
            user_ids[str(key)] = uid
        params = dict(params, user_ids=user_ids)
        document = {key: params[key] for key in DOCUMENT_KEYS}
        compiled = compile_document(document, params, host)
        return dict(compiled, path=os.path.normpath(params["path"]))

    def read(self, host, desired: dict) -> Optional[dict]:
        return read_tree(host.path(desired["path"]))

    def plan(self, current: Optional[dict], desired: dict) -> Plan:
        plan = plan_tree(current, desired["files"], desired["path"])
        plan.result.update(
            path=desired["path"],
            base_image=desired["base"],
            containerfile=desired["containerfile"],
            files=sorted(desired["files"]),
            runtime=desired["runtime"],
            context_digest=context_digest(desired["files"]),
        )
        return plan

    def prepare(self, host, plan: Plan, desired: dict) -> None:
        """The image's system Quadlet units, validated together by Podman's generator where the build runs (in check
        mode too): a unit the generator refuses would build an image whose service never starts."""
        validate_units(host, desired["units"])
        validate_units(host, desired["user_units"], user=True)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        apply_tree(host.path(desired["path"]), plan.actions)


UNIT = ImageContextUnit()


# --- a group: what every host shares is the image, the rest stays with each host ------------------------------------

LISTS = {"os": ("trust", "registry_auth", "repos", "kargs"), "": ("users", "secrets", "quadlets")}
PLACE_LISTS = ("remotes", "overrides")
PLACE_KEYS = ("scope", "user", "installation")


def _common(lists: list) -> list:
    """The items (in the first list's order) that every list holds, equal."""
    first, rest = lists[0], lists[1:]
    return [item for item in first if all(item in other for other in rest)]


def _common_packages(parts: list) -> Optional[dict]:
    """Layered packages: the names every host layers, when the hosts agree on how (the same state and options);
    base packages removed, likewise."""
    if any(part is None for part in parts):
        return None
    how = [{key: value for key, value in part.items() if key not in ("name", "override_remove")} for part in parts]
    if any(item != how[0] for item in how[1:]) or parts[0].get("state") == "absent":
        return None
    common = dict(parts[0], name=_common([part["name"] for part in parts]))
    common["override_remove"] = _common([part.get("override_remove") or [] for part in parts])
    if not common["name"] and not common["override_remove"]:
        return None
    return common


def _common_apps(lists: list) -> list:
    """App items: by their options but the names, the names every host lists."""
    found = []
    for item in lists[0]:
        how = {key: value for key, value in item.items() if key != "name"}
        names = [item["name"]]
        for other in lists[1:]:
            same = [entry for entry in other if {k: v for k, v in entry.items() if k != "name"} == how]
            names.append([name for entry in same for name in entry["name"]])
        common = _common(names)
        if common:
            found.append(dict(item, name=common))
    return found


def _common_places(lists: list) -> list:
    found = []
    for place in lists[0]:
        key = tuple(place.get(name) for name in PLACE_KEYS)
        matches = [next((p for p in other if tuple(p.get(n) for n in PLACE_KEYS) == key), None) for other in lists[1:]]
        if any(match is None for match in matches):
            continue
        group = [place, *matches]
        common = {name: value for name, value in place.items() if all(other.get(name) == value for other in matches)}
        for name in PLACE_LISTS:
            common[name] = _common([p.get(name) or [] for p in group])
        common["apps"] = _common_apps([p.get("apps") or [] for p in group])
        found.append(common)
    return found


def split_group(documents: dict) -> dict:
    """The image document of a group of hosts (``documents``: host -> document): what every host's document holds,
    equal, goes into the image (layered packages and app lists by name: those every host has); the rest stays with
    each host, which converges its whole document at runtime as before.  All hosts follow one base image.

    Returns ``{"document": the image's, "per_host": {host: [resources of its own]}}``."""
    if not documents:
        raise ContextError("no host to build an image for")
    hosts = sorted(documents)
    docs = [checked_document(host, documents[host]) for host in hosts]
    systems = [doc.get("os") or {} for doc in docs]
    bases = {json.dumps(system.get("rebase"), sort_keys=True) for system in systems}
    if len(bases) > 1:
        raise ContextError(
            "the hosts %s follow different base images (os.rebase): one image is built from one base; build per host "
            "or give the group one os_image_image" % ", ".join(hosts)
        )
    system: dict = {"rebase": systems[0].get("rebase")}
    for name in LISTS["os"]:
        system[name] = _common([s.get(name) or [] for s in systems])
    system["packages"] = _common_packages([s.get("packages") for s in systems])
    for name in ("initramfs", "update_policy"):
        values = [s.get(name) for s in systems]
        system[name] = values[0] if all(value == values[0] for value in values) else None
    common: dict = {"os": system}
    for name in LISTS[""]:
        common[name] = _common([doc.get(name) or [] for doc in docs])
    common["flatpak"] = _common_places([doc.get("flatpak") or [] for doc in docs])
    shared = {_resource_key(r) for r in document_schema.resources(common)}
    per_host = {}
    for host, doc in zip(hosts, docs):
        own = [document_schema.label(r) for r in document_schema.resources(doc) if _resource_key(r) not in shared]
        per_host[host] = own
    return {"document": without_nulls(common), "per_host": per_host}


def without_nulls(value: Any) -> Any:
    """The document as a task would give it: an option set to null is an option not given (``ref`` and ``image``
    exclude each other only when both are given)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def checked_document(host: str, document: dict) -> dict:
    """A host's document checked by host_state's own options, with their defaults."""
    spec = {key: value for key, value in document_schema.ARGUMENT_SPEC.items() if key in DOCUMENT_KEYS}
    result = ArgumentSpecValidator(spec).validate(document)
    if result.error_messages:
        raise ContextError("the document of %s: %s" % (host, "; ".join(result.error_messages)))
    return result.validated_parameters


def _resource_key(resource: Any) -> str:
    return json.dumps([resource.module, resource.params], sort_keys=True, default=str)
