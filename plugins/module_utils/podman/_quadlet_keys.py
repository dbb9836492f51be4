# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Quadlet unit file format: the key tables of podman 5.4, unit names, rendering from snake_case options, and
parsing a unit back into sections.

The key tables are podman 5.4's (``podman-systemd.unit(5)`` of podman 5.4.2, checked key by key against the
5.4.2 generator, which rejects a key outside its table with ``unsupported key 'K' in group 'G'``).  Keys only
newer podman releases know go through ``podman_args`` or a raw ``content``.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import difflib
import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import (
    BREAKS_AND_CONTROLS_BUT_TAB,
    MAX_VALUE,
    bad_character,
    shorten,
    split_lines,
)
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import (
    check_content as check_text_content,
)


def words(text: str) -> frozenset:
    return frozenset(text.split())


KINDS = ("container", "pod", "volume", "network", "kube", "image", "build")

# [Unit] first and [Install] last, as systemd documents them; the kind's own section after [Unit].
SECTION_ORDER = ("unit", "KIND", "quadlet", "service", "install")
SECTION_NAMES = {
    "unit": "Unit",
    "quadlet": "Quadlet",
    "service": "Service",
    "install": "Install",
    "container": "Container",
    "pod": "Pod",
    "volume": "Volume",
    "network": "Network",
    "kube": "Kube",
    "image": "Image",
    "build": "Build",
}

# Every Quadlet key of podman 5.4 with its option name; keys are unique across sections, the sections that take
# each key are in SECTION_KEYS.
KEY_OPTIONS = {
    "AddCapability": "add_capability",
    "AddDevice": "add_device",
    "AddHost": "add_host",
    "AllTags": "all_tags",
    "Annotation": "annotation",
    "Arch": "arch",
    "AuthFile": "auth_file",
    "AutoUpdate": "auto_update",
    "CertDir": "cert_dir",
    "CgroupsMode": "cgroups_mode",
    "ConfigMap": "config_map",
    "ContainerName": "container_name",
    "ContainersConfModule": "containers_conf_module",
    "Copy": "copy",
    "Creds": "creds",
    "DNS": "dns",
    "DNSOption": "dns_option",
    "DNSSearch": "dns_search",
    "DecryptionKey": "decryption_key",
    "DefaultDependencies": "default_dependencies",
    "Device": "device",
    "DisableDNS": "disable_dns",
    "Driver": "driver",
    "DropCapability": "drop_capability",
    "Entrypoint": "entrypoint",
    "Environment": "environment",
    "EnvironmentFile": "environment_file",
    "EnvironmentHost": "environment_host",
    "Exec": "exec",
    "ExitCodePropagation": "exit_code_propagation",
    "ExposeHostPort": "expose_host_port",
    "File": "file",
    "ForceRM": "force_rm",
    "GIDMap": "gid_map",
    "Gateway": "gateway",
    "GlobalArgs": "global_args",
    "Group": "group",
    "GroupAdd": "group_add",
    "HealthCmd": "health_cmd",
    "HealthInterval": "health_interval",
    "HealthLogDestination": "health_log_destination",
    "HealthMaxLogCount": "health_max_log_count",
    "HealthMaxLogSize": "health_max_log_size",
    "HealthOnFailure": "health_on_failure",
    "HealthRetries": "health_retries",
    "HealthStartPeriod": "health_start_period",
    "HealthStartupCmd": "health_startup_cmd",
    "HealthStartupInterval": "health_startup_interval",
    "HealthStartupRetries": "health_startup_retries",
    "HealthStartupSuccess": "health_startup_success",
    "HealthStartupTimeout": "health_startup_timeout",
    "HealthTimeout": "health_timeout",
    "HostName": "host_name",
    "IP": "ip",
    "IP6": "ip6",
    "IPAMDriver": "ipam_driver",
    "IPRange": "ip_range",
    "IPv6": "ipv6",
    "Image": "image",
    "ImageTag": "image_tag",
    "Internal": "internal",
    "KubeDownForce": "kube_down_force",
    "Label": "label",
    "LogDriver": "log_driver",
    "LogOpt": "log_opt",
    "Mask": "mask",
    "Mount": "mount",
    "Network": "network",
    "NetworkAlias": "network_alias",
    "NetworkName": "network_name",
    "NoNewPrivileges": "no_new_privileges",
    "Notify": "notify",
    "OS": "os",
    "Options": "options",
    "PidsLimit": "pids_limit",
    "Pod": "pod",
    "PodName": "pod_name",
    "PodmanArgs": "podman_args",
    "PublishPort": "publish_port",
    "Pull": "pull",
    "ReadOnly": "read_only",
    "ReadOnlyTmpfs": "read_only_tmpfs",
    "Rootfs": "rootfs",
    "RunInit": "run_init",
    "SeccompProfile": "seccomp_profile",
    "Secret": "secret",
    "SecurityLabelDisable": "security_label_disable",
    "SecurityLabelFileType": "security_label_file_type",
    "SecurityLabelLevel": "security_label_level",
    "SecurityLabelNested": "security_label_nested",
    "SecurityLabelType": "security_label_type",
    "ServiceName": "service_name",
    "SetWorkingDirectory": "set_working_directory",
    "ShmSize": "shm_size",
    "StartWithPod": "start_with_pod",
    "StopSignal": "stop_signal",
    "StopTimeout": "stop_timeout",
    "SubGIDMap": "sub_gid_map",
    "SubUIDMap": "sub_uid_map",
    "Subnet": "subnet",
    "Sysctl": "sysctl",
    "TLSVerify": "tls_verify",
    "Target": "target",
    "Timezone": "timezone",
    "Tmpfs": "tmpfs",
    "Type": "type",
    "UIDMap": "uid_map",
    "Ulimit": "ulimit",
    "Unmask": "unmask",
    "User": "user",
    "UserNS": "user_ns",
    "Variant": "variant",
    "Volume": "volume",
    "VolumeName": "volume_name",
    "WorkingDir": "working_dir",
    "Yaml": "yaml",
}

SECTION_KEYS = {
    "Container": words(
        "AddCapability AddDevice AddHost Annotation AutoUpdate CgroupsMode ContainerName ContainersConfModule DNS "
        "DNSOption DNSSearch DropCapability Entrypoint Environment EnvironmentFile EnvironmentHost Exec "
        "ExposeHostPort GIDMap GlobalArgs Group GroupAdd HealthCmd HealthInterval HealthLogDestination "
        "HealthMaxLogCount HealthMaxLogSize HealthOnFailure HealthRetries HealthStartPeriod HealthStartupCmd "
        "HealthStartupInterval HealthStartupRetries HealthStartupSuccess HealthStartupTimeout HealthTimeout "
        "HostName IP IP6 Image Label LogDriver LogOpt Mask Mount Network NetworkAlias NoNewPrivileges Notify "
        "PidsLimit Pod PodmanArgs PublishPort Pull ReadOnly ReadOnlyTmpfs Rootfs RunInit SeccompProfile Secret "
        "SecurityLabelDisable SecurityLabelFileType SecurityLabelLevel SecurityLabelNested SecurityLabelType "
        "ServiceName ShmSize StartWithPod StopSignal StopTimeout SubGIDMap SubUIDMap Sysctl Timezone Tmpfs "
        "UIDMap Ulimit Unmask User UserNS Volume WorkingDir"
    ),
    "Pod": words(
        "AddHost ContainersConfModule DNS DNSOption DNSSearch GIDMap GlobalArgs IP IP6 Network NetworkAlias "
        "PodName PodmanArgs PublishPort ServiceName ShmSize SubGIDMap SubUIDMap UIDMap UserNS Volume"
    ),
    "Volume": words(
        "ContainersConfModule Copy Device Driver GlobalArgs Group Image Label Options PodmanArgs ServiceName Type User VolumeName"
    ),
    "Network": words(
        "ContainersConfModule DNS DisableDNS Driver Gateway GlobalArgs IPAMDriver IPRange IPv6 Internal Label "
        "NetworkName Options PodmanArgs ServiceName Subnet"
    ),
    "Kube": words(
        "AutoUpdate ConfigMap ContainersConfModule ExitCodePropagation GlobalArgs KubeDownForce LogDriver LogOpt "
        "Network PodmanArgs PublishPort ServiceName SetWorkingDirectory UserNS Yaml"
    ),
    "Image": words(
        "AllTags Arch AuthFile CertDir ContainersConfModule Creds DecryptionKey GlobalArgs Image ImageTag OS "
        "PodmanArgs ServiceName TLSVerify Variant"
    ),
    "Build": words(
        "Annotation Arch AuthFile ContainersConfModule DNS DNSOption DNSSearch Environment File ForceRM "
        "GlobalArgs GroupAdd ImageTag Label Network PodmanArgs Pull Secret ServiceName SetWorkingDirectory "
        "TLSVerify Target Variant Volume"
    ),
    "Quadlet": frozenset(("DefaultDependencies",)),
}

# Still accepted by podman 5.4 but deprecated: accepted in raw content, refused in structured options.
DEPRECATED_KEYS = {
    "Container": {"RemapGid": "uid_map/gid_map or user_ns", "RemapUid": "uid_map or user_ns",
                  "RemapUidSize": "user_ns", "RemapUsers": "user_ns", "VolatileTmp": "tmpfs"},
    "Pod": {"RemapGid": "gid_map", "RemapUid": "uid_map", "RemapUidSize": "user_ns", "RemapUsers": "user_ns"},
    "Kube": {"RemapGid": "user_ns", "RemapUid": "user_ns", "RemapUidSize": "user_ns", "RemapUsers": "user_ns"},
}  # fmt: skip

# Keys the generator splits into words (systemd quoting rules): list items are quoted one by one.
WORD_SPLIT_KEYS = words(
    "Exec PodmanArgs GlobalArgs Mask Unmask EnvironmentFile Secret Mount AddDevice DropCapability AddCapability "
    "Sysctl UIDMap GIDMap LogOpt ConfigMap Environment Label Annotation"
)
# Keys written as KEY=VALUE pairs, which may be given as a mapping.  Options is one only for networks.
PAIR_KEYS = frozenset(("Environment", "Label", "Annotation", "Sysctl", "LogOpt"))
NETWORK_PAIR_KEYS = frozenset(("Options",))

INSTALL_KEYS = frozenset(("Alias", "Also", "DefaultInstance", "RequiredBy", "UpheldBy", "WantedBy"))
# snake_case words that systemd spells as acronyms ([Unit] and [Service] keys are passed through).
SYSTEMD_WORDS = {
    "bpf": "BPF",
    "cpu": "CPU",
    "gid": "GID",
    "io": "IO",
    "ip": "IP",
    "oom": "OOM",
    "pam": "PAM",
    "pid": "PID",
    "pidfile": "PIDFile",
    "tty": "TTY",
    "uid": "UID",
    "umask": "UMask",
    "utmp": "UTMP",
}

# Generated service name per kind: NAME + suffix + ".service", unless ServiceName= says otherwise.
SERVICE_SUFFIX = {
    "container": "",
    "kube": "",
    "pod": "-pod",
    "volume": "-volume",
    "network": "-network",
    "image": "-image",
    "build": "-build",
}
REQUIRED_KEYS = {
    "container": (("Image", "Rootfs"), "an image (or a rootfs)"),
    "kube": (("Yaml",), "yaml"),
    "image": (("Image",), "image"),
    "build": (("ImageTag",), "image_tag"),
}
DEFAULT_WANTED_BY = {"user": "default.target", "system": "multi-user.target"}
HEADER = "# Managed by Ansible (immutable.hosts.quadlet): changes made here are overwritten.\n"

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@\-]*\Z")
_SNAKE_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*\Z")
_SYSTEMD_KEY_RE = re.compile(r"^[A-Z][A-Za-z0-9]*\Z")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_CONTROL_RE = BREAKS_AND_CONTROLS_BUT_TAB
_NEEDS_QUOTES_RE = re.compile(r"[\s\"'\\]")
_SECTION_RE = re.compile(r"^\[(?P<name>[^\[\]]+)\]\s*\Z")

OPTION_KEYS = {option: key for key, option in KEY_OPTIONS.items()}


class InvalidQuadlet(HostsError, ValueError):
    """A unit, a name or an option Quadlet would not take; ``str()`` is the message for the user."""


# --- names ------------------------------------------------------------------------------------------------------


def validate_name(name: str, kind: str) -> str:
    """The unit's base name: a systemd unit name without the extension, never a path."""
    if kind not in KINDS:
        raise InvalidQuadlet("kind must be one of %s, got %r" % (", ".join(KINDS), kind))
    if not isinstance(name, str) or not name:
        raise InvalidQuadlet("name is required: the unit's base name, for example 'web'")
    if _CONTROL_RE.search(name) or "\t" in name:
        raise InvalidQuadlet("name %r contains a newline or other control character" % name)
    if "/" in name or name in (".", "..") or ".." in name:
        raise InvalidQuadlet("name %r must be a plain unit name, not a path ('/' and '..' are not allowed)" % name)
    for extension in KINDS:
        if name.endswith("." + extension):
            raise InvalidQuadlet("give name without its extension: %r, not %r" % (name[: -len(extension) - 1], name))
    if not _NAME_RE.match(name) or len(name) > 200:
        raise InvalidQuadlet(
            "name %r is not a valid unit name: letters, digits and '_.:@-' only, starting with a letter, digit or '_', "
            "at most 200 characters" % shorten(name)
        )
    return name


def file_name(name: str, kind: str) -> str:
    return "%s.%s" % (name, kind)


def service_name(name: str, kind: str, sections: Optional[dict] = None) -> str:
    """The service the generator makes of the unit: ``ServiceName=`` when set, else the kind's default."""
    values = (sections or {}).get(SECTION_NAMES[kind]) or []
    for key, value in reversed(values):
        if key == "ServiceName" and value:
            return value + ".service"
    return "%s%s.service" % (name, SERVICE_SUFFIX[kind])


# --- option names -> keys ---------------------------------------------------------------------------------------


def quadlet_key(section: str, option: str) -> str:
    """The Quadlet key of ``option`` (snake_case, or the key itself) in ``section``; unknown keys are refused."""
    allowed = SECTION_KEYS[section]
    key = option if option in allowed else OPTION_KEYS.get(option)
    if key in DEPRECATED_KEYS.get(section, {}) or option in DEPRECATED_KEYS.get(section, {}):
        old = key if key in DEPRECATED_KEYS.get(section, {}) else option
        raise InvalidQuadlet("%s is deprecated in podman 5; use %s instead" % (old, DEPRECATED_KEYS[section][old]))
    if key is None or key not in allowed:
        known = sorted(KEY_OPTIONS[name] for name in allowed)
        close = difflib.get_close_matches(str(option), known, n=3)
        hint = ("; did you mean %s?" % " or ".join(close)) if close else ""
        raise InvalidQuadlet(
            "unknown key %r in the [%s] section (podman 5.4 Quadlet keys: %s)%s" % (option, section, ", ".join(known), hint)
        )
    return key


def systemd_key(section: str, option: str) -> str:
    """A [Unit], [Service] or [Install] key: the systemd spelling itself, or snake_case (``wanted_by``)."""
    if not isinstance(option, str) or not option:
        raise InvalidQuadlet("empty key in the [%s] section" % section)
    if _SYSTEMD_KEY_RE.match(option):
        key = option
    elif _SNAKE_RE.match(option):
        key = "".join(SYSTEMD_WORDS.get(word, word.capitalize()) for word in option.split("_"))
    else:
        raise InvalidQuadlet("invalid key %r in the [%s] section: use snake_case or systemd's spelling" % (option, section))
    if section == "Install" and key not in INSTALL_KEYS:
        raise InvalidQuadlet(
            "unknown key %r in the [Install] section (systemd keys: %s)" % (option, ", ".join(sorted(INSTALL_KEYS)))
        )
    return key


# --- values -------------------------------------------------------------------------------------------------------


def quote_word(word: str) -> str:
    """One argument as systemd's word splitting reads it back: quoted when it holds blanks, quotes or backslashes."""
    if word and not _NEEDS_QUOTES_RE.search(word):
        return word
    return '"%s"' % word.replace("\\", "\\\\").replace('"', '\\"')


def check_length(section: str, key: str, value: str) -> None:
    if len(value) > MAX_VALUE:
        raise InvalidQuadlet(
            "%s= in [%s] is %d characters long; a value holds at most %d" % (key, section, len(value), MAX_VALUE)
        )


def _scalar(section: str, key: str, value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise InvalidQuadlet("%s= in [%s] takes a string, number or boolean, got %r" % (key, section, value))
    check_length(section, key, value)
    if _CONTROL_RE.search(value):
        raise InvalidQuadlet(
            "%s= in [%s] contains %s, a line break or control character: %r"
            % (key, section, bad_character(value, allow="\t"), value)
        )
    if value != value.strip():
        raise InvalidQuadlet("%s= in [%s] has leading or trailing blanks, which systemd drops: %r" % (key, section, value))
    if value.endswith("\\"):
        raise InvalidQuadlet("%s= in [%s] ends with a backslash, which systemd reads as a line continuation" % (key, section))
    return value


def _pair(section: str, key: str, name, value) -> str:
    if not isinstance(name, str) or not name or (key == "Environment" and not _ENV_NAME_RE.match(name)):
        raise InvalidQuadlet("%s= in [%s]: %r is not a valid name" % (key, section, name))
    if "=" in name or _NEEDS_QUOTES_RE.search(name) or _CONTROL_RE.search(name):
        raise InvalidQuadlet("%s= in [%s]: name %r may not contain '=', blanks or quotes" % (key, section, name))
    if value is None:
        value = ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise InvalidQuadlet("%s= in [%s]: the value of %s must be a string or number, got %r" % (key, section, name, value))
    value = str(value)
    check_length(section, key, value)
    if _CONTROL_RE.search(value):
        raise InvalidQuadlet(
            "%s= in [%s]: the value of %s contains %s, a line break or control character"
            % (key, section, name, bad_character(value, allow="\t"))
        )
    return quote_word("%s=%s" % (name, value))


def _list_item(section: str, key: str, item) -> str:
    if isinstance(item, (dict, list, tuple)) or item is None:
        raise InvalidQuadlet("%s= in [%s]: list items are strings, numbers or booleans, got %r" % (key, section, item))
    if key not in WORD_SPLIT_KEYS:
        return _scalar(section, key, item)
    if isinstance(item, str):
        check_length(section, key, item)
    if isinstance(item, str) and _CONTROL_RE.search(item):
        raise InvalidQuadlet(
            "%s= in [%s] contains %s, a line break or control character: %r"
            % (key, section, bad_character(item, allow="\t"), item)
        )
    text = ("true" if item else "false") if isinstance(item, bool) else str(item)
    return quote_word(text)


# systemd's unit specifiers (systemd.unit(5)); any other "%X" makes systemd refuse to load the generated service.
SPECIFIERS = frozenset("aAbBCdDEfgGhHiIjJlLmMnNopPqsStTuUvVwWyY%")
_SPECIFIER_RE = re.compile(r"%(.?)", re.S)


def check_specifiers(section: str, key: str, value: str) -> str:
    """systemd expands ``%h``, ``%U``... in the values of the generated service; a ``%`` that starts no specifier
    would make it refuse the unit, so it is refused here, with the way to write a literal one."""
    for match in _SPECIFIER_RE.finditer(value):
        if match.group(1) not in SPECIFIERS:
            raise InvalidQuadlet(
                "%s= in [%s]: %r has a %% that starts no systemd specifier (%%h, %%U, ...); write %%%% for a literal %%"
                % (key, section, value)
            )
    return value


def render_values(section: str, key: str, value) -> list:
    """The right-hand sides of ``key``'s lines, in order (a list renders as repeated keys)."""
    if value is None:
        return []
    pairs = key in PAIR_KEYS or (section == "Network" and key in NETWORK_PAIR_KEYS)
    if isinstance(value, dict):
        if not pairs:
            raise InvalidQuadlet("%s= in [%s] takes a string or a list, not a mapping" % (key, section))
        result = [_pair(section, key, name, value[name]) for name in sorted(value, key=str)]
    elif isinstance(value, (list, tuple)):
        result = [_list_item(section, key, item) for item in value]
        if key == "Exec":  # only the last Exec= counts: the arguments go on one line
            result = [" ".join(result)] if result else []
    else:
        result = [_scalar(section, key, value)]
    return [check_specifiers(section, key, rhs) for rhs in result]


# --- rendering ------------------------------------------------------------------------------------------------------


def _section_items(section: str, options, quadlet_section: bool) -> list:
    if options is None:
        return []
    if not isinstance(options, dict):
        raise InvalidQuadlet("the %s options must be a mapping of keys to values" % section.lower())
    lines = []
    seen = {}
    for option, value in options.items():
        key = quadlet_key(section, option) if quadlet_section else systemd_key(section, option)
        if key in seen:
            raise InvalidQuadlet("[%s] sets %s twice (as %r and %r)" % (section, key, seen[key], option))
        seen[key] = option
        lines.append((key, render_values(section, key, value)))
    return [(key, rhs) for key, values in sorted(lines, key=lambda item: item[0]) for rhs in values]


def build_sections(kind: str, options: dict, scope: str = "user", enabled: Optional[bool] = None) -> dict:
    """The unit as ``{section name: [(key, value), ...]}`` from snake_case options per section.

    ``options`` holds ``unit``, the kind's own section (``container``, ...), ``quadlet``, ``service`` and
    ``install``.  ``enabled`` adds ``WantedBy=`` (true) or refuses an [Install] section (false).
    """
    if kind not in KINDS:
        raise InvalidQuadlet("kind must be one of %s, got %r" % (", ".join(KINDS), kind))
    for other in KINDS:
        if other != kind and options.get(other) is not None:
            raise InvalidQuadlet("%s options were given for a unit of kind %s; set kind: %s or drop them" % (other, kind, other))
    sections = {}
    for part in SECTION_ORDER:
        source = kind if part == "KIND" else part
        section = SECTION_NAMES[source]
        items = _section_items(section, options.get(source), source in KINDS or source == "quadlet")
        if source == kind or items:
            sections[section] = items
    install = sections.get("Install", [])
    if enabled is False and install:
        raise InvalidQuadlet("enabled: false conflicts with install options; a unit with [Install] is enabled")
    if enabled and not any(key in ("WantedBy", "RequiredBy", "UpheldBy") for key, _value in install):
        sections["Install"] = sorted(install + [("WantedBy", DEFAULT_WANTED_BY[scope])], key=lambda item: item[0])
    check_required(kind, sections)
    return sections


def check_required(kind: str, sections: dict) -> None:
    required = REQUIRED_KEYS.get(kind)
    if not required:
        return
    keys, label = required
    present = {key for key, value in sections.get(SECTION_NAMES[kind], []) if value}
    if not present.intersection(keys):
        raise InvalidQuadlet("a %s unit needs %s (%s=)" % (kind, label, "= or ".join(keys)))
    if kind == "container" and {"Image", "Rootfs"} <= present:
        raise InvalidQuadlet("a container unit takes either image or rootfs, not both")


def render(sections: dict, header: bool = True) -> str:
    """Unit text: sections in the order given (build_sections fixes it), one ``Key=value`` line per value."""
    blocks = []
    for section, items in sections.items():
        blocks.append("\n".join(["[%s]" % section] + ["%s=%s" % (key, value) for key, value in items]) + "\n")
    return (HEADER if header else "") + "\n".join(blocks)


def render_unit(kind: str, options: dict, scope: str = "user", enabled: Optional[bool] = None) -> str:
    return render(build_sections(kind, options, scope, enabled))


# --- parsing --------------------------------------------------------------------------------------------------------


def parse_unit(text: str) -> dict:
    """A unit file as ``{section: [(key, value), ...]}`` in file order; comments and blank lines dropped.

    Follows systemd's syntax: ``#`` and ``;`` start comments, a trailing backslash continues the line, blanks
    around ``=`` are dropped.  A line that is none of these raises, as the generator would refuse it.
    """
    sections: dict = {}
    current = None
    pending = ""
    for number, raw in enumerate(split_lines(text), 1):
        line = pending + raw.strip() if pending else raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        match = _SECTION_RE.match(line)
        if match:
            current = match.group("name")
            sections.setdefault(current, [])
            continue
        if "=" not in line:
            raise InvalidQuadlet("line %d is not a key=value pair, a [section] or a comment: %r" % (number, raw))
        if current is None:
            raise InvalidQuadlet("line %d comes before any [section]: %r" % (number, raw))
        key, value = line.split("=", 1)
        sections[current].append((key.strip(), value.strip()))
    return sections


def check_content(kind: str, text: str) -> dict:
    """Raw unit text, checked: it parses, has the kind's section, and uses podman 5.4 keys only."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidQuadlet("content is empty")
    check_text_content(text, "content", InvalidQuadlet)
    sections = parse_unit(text)
    own = SECTION_NAMES[kind]
    if own not in sections:
        raise InvalidQuadlet("content of a %s unit needs a [%s] section" % (kind, own))
    for other in KINDS:
        if other != kind and SECTION_NAMES[other] in sections:
            raise InvalidQuadlet("content of a %s unit has a [%s] section" % (kind, SECTION_NAMES[other]))
    for section, items in sections.items():
        for key, value in items:
            check_specifiers(section, key, value)
        allowed = SECTION_KEYS.get(section)
        if allowed is None:
            continue
        allowed = allowed | set(DEPRECATED_KEYS.get(section, {}))
        for key, _value in items:
            if key not in allowed:
                raise InvalidQuadlet("unsupported key %r in the [%s] section of content (podman 5.4)" % (key, section))
    check_required(kind, sections)
    return sections
