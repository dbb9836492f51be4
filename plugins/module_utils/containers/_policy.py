# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image trust: one scope of ``/etc/containers/policy.json``, its ``registries.d`` entry and its public key.
:data:`UNIT` is the module immutable.hosts.image_policy.

containers/image reads the policy strictly: an unknown, duplicated or invalid field makes the whole file, and so every
pull (rpm-ostree's and bootc's included), fail. :func:`policy_problems` is that check (containers-policy.json(5)),
applied to the whole policy before anything is written. ``registries.d`` files are YAML; the ones this module writes
hold one namespace each, and :func:`namespaces` reads the namespaces of the others (a namespace defined twice makes
containers/image refuse every file).

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_content, check_value, split_lines

POLICY = "/etc/containers/policy.json"
REGISTRIES_D = "/etc/containers/registries.d"
KEY_DIR = "/etc/pki/containers"
MARKER = "# Managed by Ansible (immutable.hosts.image_policy): changes made here are overwritten."

TRANSPORTS = (
    "atomic", "containers-storage", "dir", "docker", "docker-archive", "docker-daemon", "oci", "oci-archive", "ostree",
    "sif", "tarball",
)  # fmt: skip
REQUIREMENT_TYPES = ("insecureAcceptAnything", "reject", "signedBy", "sigstoreSigned")
IDENTITY_TYPES = ("matchExact", "matchRepoDigestOrExact", "matchRepository", "exactReference", "exactRepository", "remapIdentity")
IDENTITY_FIELDS = {
    "matchExact": (),
    "matchRepoDigestOrExact": (),
    "matchRepository": (),
    "exactReference": ("dockerReference",),
    "exactRepository": ("dockerRepository",),
    "remapIdentity": ("prefix", "signedPrefix"),
}
SIGSTORE_KEYS = ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
SIGSTORE_FIELDS = {
    "type",
    "signedIdentity",
    "rekorPublicKeyPath",
    "rekorPublicKeyPaths",
    "rekorPublicKeyData",
    "rekorPublicKeyDatas",
    *SIGSTORE_KEYS,
}
SIGNEDBY_KEYS = ("keyPath", "keyPaths", "keyData")
SIGNEDBY_FIELDS = {"type", "keyType", "signedIdentity", *SIGNEDBY_KEYS}
FULCIO_FIELDS = {"caPath", "caData", "oidcIssuer", "subjectEmail"}
PKI_FIELDS = {"caRootsPath", "caRootsData", "caIntermediatesPath", "caIntermediatesData", "subjectHostname", "subjectEmail"}
# Transports whose scopes are registry references, paths, or only the transport default.
REFERENCE_TRANSPORTS = ("atomic", "docker", "docker-daemon")
PATH_TRANSPORTS = ("dir", "oci", "oci-archive", "sif")
DEFAULT_ONLY_TRANSPORTS = ("docker-archive", "tarball")

_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REFERENCE_SCOPE = re.compile(
    r"^%s(?:/%s)*(?::[\w][\w.-]{0,127}|@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?\Z"
    % (_HOST, _COMPONENT)
)
WILDCARD_SCOPE = re.compile(r"^\*\.%s\Z" % _HOST.replace("(?::[0-9]+)?", ""))
REPOSITORY = re.compile(r"^%s(?:/%s)*\Z" % (_HOST, _COMPONENT))
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
PEM_PUBLIC_KEY = re.compile(r"-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----")
PGP_PUBLIC_KEY = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----\n[\s\S]+?-----END PGP PUBLIC KEY BLOCK-----")


class PolicyError(HostsError):
    """A policy, scope or key that containers/image would refuse, or that this module will not write."""


# --- the policy's own rules (containers-policy.json(5)) ----------------------------------------------------------


def scope_problem(transport: str, scope: str) -> Optional[str]:
    """Why ``scope`` is not a scope of ``transport``, or None."""
    if scope == "":
        return None
    if transport in DEFAULT_ONLY_TRANSPORTS:
        return 'the %s transport has only the default scope ""' % transport
    if transport in REFERENCE_TRANSPORTS:
        if WILDCARD_SCOPE.match(scope) or REFERENCE_SCOPE.match(scope):
            return None
        return (
            "%r is not a %s scope: a registry host[:port], optionally with a repository namespace or repository "
            "(lowercase) and a tag or digest, or *.domain" % (scope, transport)
        )
    if transport in PATH_TRANSPORTS:
        if not scope.startswith("/") or scope == "/":
            return '%r is not a %s scope: an absolute path other than "/" (use "" for every path)' % (scope, transport)
        return None
    return None  # containers-storage and ostree scopes have forms of their own; containers/image checks them


def identity_problems(identity: Any, where: str) -> list:
    if not isinstance(identity, dict):
        return ["%s: signedIdentity is an object" % where]
    kind = identity.get("type")
    if kind not in IDENTITY_FIELDS:
        return ["%s: signedIdentity type %r is not one of %s" % (where, kind, ", ".join(IDENTITY_TYPES))]
    problems = []
    wanted = set(IDENTITY_FIELDS[kind])
    for name in sorted(set(identity) - wanted - {"type"}):
        problems.append("%s: signedIdentity %s has no field %r" % (where, kind, name))
    for name in sorted(wanted - set(identity)):
        problems.append("%s: signedIdentity %s needs %r" % (where, kind, name))
    for name in ("dockerRepository", "prefix", "signedPrefix"):
        value = identity.get(name)
        if name in identity and (not isinstance(value, str) or not REPOSITORY.match(value)):
            problems.append("%s: signedIdentity %s %r is not a repository or namespace" % (where, name, value))
    if "dockerReference" in identity and (
        not isinstance(identity["dockerReference"], str) or not REFERENCE_SCOPE.match(identity["dockerReference"])
    ):
        problems.append("%s: signedIdentity dockerReference %r is not a reference" % (where, identity["dockerReference"]))
    return problems


def _exactly_one(requirement: dict, names: tuple, where: str) -> list:
    present = [n for n in names if n in requirement]
    if len(present) != 1:
        return ["%s: exactly one of %s is needed (found %s)" % (where, ", ".join(names), ", ".join(present) or "none")]
    return []


def requirement_problems(requirement: Any, where: str) -> list:
    if not isinstance(requirement, dict):
        return ["%s: a requirement is an object" % where]
    kind = requirement.get("type")
    if kind not in REQUIREMENT_TYPES:
        return ["%s: requirement type %r is not one of %s" % (where, kind, ", ".join(REQUIREMENT_TYPES))]
    problems: list = []
    if kind in ("insecureAcceptAnything", "reject"):
        allowed: set = {"type"}
    elif kind == "signedBy":
        allowed = SIGNEDBY_FIELDS
        if requirement.get("keyType") != "GPGKeys":
            problems.append('%s: signedBy needs keyType "GPGKeys"' % where)
        problems += _exactly_one(requirement, SIGNEDBY_KEYS, where)
    else:
        allowed = SIGSTORE_FIELDS
        problems += _exactly_one(requirement, SIGSTORE_KEYS, where)
        rekor = [
            n
            for n in ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas")
            if n in requirement
        ]
        if len(rekor) > 1:
            problems.append("%s: at most one of the rekorPublicKey fields" % where)
        if "fulcio" in requirement:
            fulcio = requirement["fulcio"]
            if not isinstance(fulcio, dict) or set(fulcio) - FULCIO_FIELDS:
                problems.append("%s: fulcio has only %s" % (where, ", ".join(sorted(FULCIO_FIELDS))))
            elif not rekor:
                problems.append("%s: fulcio needs a rekorPublicKey field" % where)
        if "pki" in requirement and (not isinstance(requirement["pki"], dict) or set(requirement["pki"]) - PKI_FIELDS):
            problems.append("%s: pki has only %s" % (where, ", ".join(sorted(PKI_FIELDS))))
    for name in sorted(set(requirement) - allowed):
        problems.append("%s: a %s requirement has no field %r" % (where, kind, name))
    for name in ("keyPath", "rekorPublicKeyPath"):
        if name in requirement and (not isinstance(requirement[name], str) or not requirement[name].startswith("/")):
            problems.append("%s: %s is an absolute path" % (where, name))
    for name in ("keyPaths", "keyDatas", "rekorPublicKeyPaths", "rekorPublicKeyDatas"):
        if name in requirement and (not isinstance(requirement[name], list) or not requirement[name]):
            problems.append("%s: %s is a non-empty list" % (where, name))
    for name in ("keyData", "rekorPublicKeyData"):
        if name in requirement:
            try:
                base64.b64decode(str(requirement[name]), validate=True)
            except ValueError:
                problems.append("%s: %s is base64" % (where, name))
    if "signedIdentity" in requirement:
        problems += identity_problems(requirement["signedIdentity"], where)
    return problems


def requirements_problems(requirements: Any, where: str) -> list:
    if not isinstance(requirements, list) or not requirements:
        return ["%s: a non-empty list of requirements is needed" % where]
    problems = []
    for index, requirement in enumerate(requirements):
        problems += requirement_problems(requirement, "%s[%d]" % (where, index))
    return problems


def policy_problems(policy: Any) -> list:
    """Everything in ``policy`` (a parsed policy.json) that containers/image would refuse."""
    if not isinstance(policy, dict):
        return ["the policy is a JSON object"]
    problems = ["the policy has no field %r" % name for name in sorted(set(policy) - {"default", "transports"})]
    if "default" not in policy:
        problems.append("the policy needs a default (a list of requirements)")
    else:
        problems += requirements_problems(policy["default"], "default")
    transports = policy.get("transports", {})
    if not isinstance(transports, dict):
        return problems + ["transports is an object"]
    for transport, scopes in transports.items():
        if transport not in TRANSPORTS:
            problems.append("transports: %r is not a transport (%s)" % (transport, ", ".join(TRANSPORTS)))
            continue
        if not isinstance(scopes, dict):
            problems.append("transports.%s is an object of scopes" % transport)
            continue
        for scope, requirements in scopes.items():
            problem = scope_problem(transport, scope)
            if problem:
                problems.append("transports.%s: %s" % (transport, problem))
            problems += requirements_problems(requirements, "transports.%s[%r]" % (transport, scope))
    return problems


def parse_policy(text: Optional[str], path: str) -> dict:
    if text is None:
        raise PolicyError(
            "%s does not exist: it comes with containers-common (every image pull reads it); restore it before adding trust"
            % path
        )
    try:
        policy = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise PolicyError(
            "%s is not valid JSON (%s); containers/image refuses it as it is, so fix it first" % (path, exc)
        ) from None
    problems = policy_problems(policy)
    if problems:
        raise PolicyError("%s is already invalid for containers/image: %s; fix it first" % (path, "; ".join(problems)))
    return policy


def _no_duplicates(pairs: list) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key %r" % key)
        result[key] = value
    return result


def indent_of(text: str) -> Any:
    """The indentation the file uses (a tab, or a number of spaces), so a rewrite keeps the file's look."""
    for line in split_lines(text)[1:]:
        stripped = line.lstrip(" \t")
        if stripped and stripped != line:
            lead = line[: len(line) - len(stripped)]
            return "\t" if lead.startswith("\t") else len(lead)
    return 4


def render_policy(policy: dict, like: str) -> str:
    return json.dumps(policy, indent=indent_of(like)) + "\n"


# --- registries.d -------------------------------------------------------------------------------------------------

_YAML_KEY = re.compile(
    r"""^(?P<indent> *)(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^']|'')*)'|(?P<plain>[^#'"\s][^#]*?))\s*:(?:\s|$)"""
)


def namespaces(text: str) -> list:
    """The namespaces a registries.d file configures under ``docker:`` (its first level of keys there)."""
    found: list = []
    inside, child_indent = False, None
    for line in split_lines(text):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _YAML_KEY.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            inside = bool(match) and _key(match) == "docker"
            child_indent = None
            continue
        if not inside or match is None:
            continue
        if child_indent is None:
            child_indent = indent
        if indent == child_indent:
            found.append(_key(match))
    return found


def _key(match: Any) -> str:
    if match.group("dq") is not None:
        return json.loads('"%s"' % match.group("dq"))
    if match.group("sq") is not None:
        return match.group("sq").replace("''", "'")
    return match.group("plain").strip()


def render_registries_d(scope: str, attachments: Optional[bool], lookaside: Optional[str]) -> str:
    lines = [MARKER, "docker:", "  %s:" % json.dumps(scope)]
    if attachments is not None:
        lines.append("    use-sigstore-attachments: %s" % ("true" if attachments else "false"))
    if lookaside is not None:
        lines.append("    lookaside: %s" % json.dumps(lookaside))
    return "\n".join(lines) + "\n"


def slug(scope: str) -> str:
    """A file name for a scope: ``quay.io/fedora`` -> ``quay.io-fedora``."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", scope.replace("*", "wildcard")).strip("-.")
    return text or "default"


# --- the unit -----------------------------------------------------------------------------------------------------


class ImagePolicyUnit:
    ARGUMENT_SPEC = dict(
        scope=dict(type="str"),
        transport=dict(type="str", default="docker", choices=list(TRANSPORTS)),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        type=dict(type="str", default="sigstoreSigned", choices=list(REQUIREMENT_TYPES)),
        key=dict(type="str", no_log=False),
        key_path=dict(type="path"),
        key_inline=dict(type="bool", default=False),
        signed_identity=dict(
            type="dict",
            options=dict(
                type=dict(type="str", required=True, choices=list(IDENTITY_TYPES)),
                docker_reference=dict(type="str"),
                docker_repository=dict(type="str"),
                prefix=dict(type="str"),
                signed_prefix=dict(type="str"),
            ),
        ),
        use_sigstore_attachments=dict(type="bool"),
        lookaside=dict(type="str"),
        registries_d_path=dict(type="path"),
        policy_path=dict(type="path", default=POLICY),
    )
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, _host) -> dict:
        transport, scope, kind = params["transport"], params["scope"], params["type"]
        if scope is None:
            # The policy's global default: what every transport and scope without requirements of its own gets.
            if params["state"] == "absent":
                raise PolicyError("the policy's default cannot be removed (containers/image needs one): give it a type instead")
            if params["use_sigstore_attachments"] is not None or params["lookaside"] is not None or params["registries_d_path"]:
                raise PolicyError("registries.d options need a scope (a registry or namespace)")
        else:
            check_value(scope, "scope", PolicyError)
            problem = scope_problem(transport, scope)
            if problem:
                raise PolicyError(problem)
        signed = kind in ("sigstoreSigned", "signedBy")
        if params["state"] == "present" and signed and params["key"] is None and params["key_path"] is None:
            raise PolicyError("type=%s needs the public key: key (its text) or key_path (a file on the host)" % kind)
        if not signed:
            for name in ("key", "key_path", "signed_identity"):
                if params[name] not in (None, False):
                    raise PolicyError("%s is for signed types (sigstoreSigned, signedBy), not type=%s" % (name, kind))
        if params["key_inline"] and params["key"] is None:
            raise PolicyError("key_inline puts key into the policy: give key (the public key's text)")
        if params["key_inline"] and params["key_path"] is not None:
            raise PolicyError("key_inline and key_path exclude each other: the key is either in the policy or in a file")
        if params["key_path"] is not None and not params["key_path"].startswith("/"):
            raise PolicyError("key_path is an absolute path on the host")
        key = params["key"]
        if key is not None:
            key = check_content(key.strip() + "\n", "key", PolicyError)
            pattern = PEM_PUBLIC_KEY if kind == "sigstoreSigned" else PGP_PUBLIC_KEY
            if not pattern.search(key):
                raise PolicyError(
                    "key is not %s"
                    % ("a PEM public key (-----BEGIN PUBLIC KEY-----, as cosign writes it)" if kind == "sigstoreSigned"
                       else "an ASCII-armored OpenPGP public key (-----BEGIN PGP PUBLIC KEY BLOCK-----)")
                )  # fmt: skip
        docker = transport == "docker" and scope is not None
        attachments = params["use_sigstore_attachments"]
        if attachments is None and docker and kind == "sigstoreSigned" and params["state"] == "present":
            attachments = True
        if (attachments is not None or params["lookaside"] is not None) and not docker:
            raise PolicyError("use_sigstore_attachments and lookaside configure registries (registries.d): transport=docker only")
        if (attachments is not None or params["lookaside"] is not None) and not scope:
            raise PolicyError('registries.d needs a registry or namespace: give a scope other than ""')
        if params["lookaside"] is not None:
            check_value(params["lookaside"], "lookaside", PolicyError)
            if not re.match(r"^(https?|file)://\S+\Z", params["lookaside"]):
                raise PolicyError("lookaside is an http://, https:// or file:// URL")
        key_path = params["key_path"]
        if key is not None and not params["key_inline"] and key_path is None:
            key_path = "%s/%s.%s" % (
                KEY_DIR,
                slug(scope) if scope is not None else "default",
                "pub" if kind == "sigstoreSigned" else "gpg",
            )
        requirement = None
        if params["state"] == "present":
            requirement = self.requirement(params, key, key_path)
            problems = requirement_problems(requirement, "the requirement")
            if problems:
                raise PolicyError("; ".join(problems))
        manage_registries_d = (
            docker and bool(scope) and (attachments is not None or params["lookaside"] is not None or params["state"] == "absent")
        )
        registries_d = params["registries_d_path"] or (
            "%s/%s.yaml" % (REGISTRIES_D, slug(scope)) if manage_registries_d else None
        )
        return {
            "transport": transport,
            "scope": scope,
            "state": params["state"],
            "requirement": requirement,
            "key": key if not params["key_inline"] else None,
            "key_path": key_path if key is not None and not params["key_inline"] else None,
            "registries_d": registries_d,
            "registries_d_text": render_registries_d(scope, attachments, params["lookaside"])
            if params["state"] == "present" and registries_d
            else None,
            "policy_path": params["policy_path"],
        }

    @staticmethod
    def requirement(params: dict, key: Optional[str], key_path: Optional[str]) -> dict:
        kind = params["type"]
        requirement: dict = {"type": kind}
        if kind not in ("sigstoreSigned", "signedBy"):
            return requirement
        if kind == "signedBy":
            requirement["keyType"] = "GPGKeys"
        if params["key_inline"]:
            requirement["keyData"] = base64.b64encode((key or "").encode()).decode()
        else:
            requirement["keyPath"] = key_path
        identity = params["signed_identity"]
        if identity is None and kind == "sigstoreSigned":
            identity = {"type": "matchRepository"}
        if identity is not None:
            names = {
                "docker_reference": "dockerReference",
                "docker_repository": "dockerRepository",
                "prefix": "prefix",
                "signed_prefix": "signedPrefix",
            }
            requirement["signedIdentity"] = {
                "type": identity["type"],
                **{names[k]: v for k, v in identity.items() if k in names and v is not None},
            }
        return requirement

    def read(self, host, desired: dict) -> dict:
        current = {"policy_text": host.read_text(desired["policy_path"])}
        current["key_text"] = host.read_text(desired["key_path"]) if desired["key_path"] else None
        registries_d = desired["registries_d"]
        current["registries_d_text"] = host.read_text(registries_d) if registries_d else None
        others = {}
        directory = registries_d.rsplit("/", 1)[0] if registries_d else REGISTRIES_D
        for path in host.glob(directory + "/*.yaml") + host.glob(directory + "/*.yml"):
            if path != registries_d:
                text = host.read_text(path)
                if text is not None:
                    others[path] = text
        current["other_registries_d"] = others
        return current

    def plan(self, current: dict, desired: dict) -> Plan:
        path, transport, scope = desired["policy_path"], desired["transport"], desired["scope"]
        text = current["policy_text"]
        policy = parse_policy(text, path)
        after_policy = json.loads(json.dumps(policy))
        transports = after_policy.setdefault("transports", {})
        if scope is None:
            before = policy["default"]
            after_policy["default"] = [desired["requirement"]]
            if "transports" not in policy:
                del after_policy["transports"]
        elif desired["state"] == "present":
            before = (policy.get("transports") or {}).get(transport, {}).get(scope)
            transports.setdefault(transport, {})[scope] = [desired["requirement"]]
        else:
            before = (policy.get("transports") or {}).get(transport, {}).get(scope)
            scopes = transports.get(transport, {})
            scopes.pop(scope, None)
            if transport in transports and not scopes:
                del transports[transport]
            if not transports and "transports" not in policy:
                del after_policy["transports"]
        problems = policy_problems(after_policy)
        if problems:
            raise PolicyError("the policy would be invalid for containers/image: %s" % "; ".join(problems))
        policy_changed = after_policy != policy
        new_text = render_policy(after_policy, text or "") if policy_changed else text
        diff = [{"before": text, "after": new_text, "before_header": path, "after_header": path}]
        actions: dict = {
            "policy": new_text if policy_changed else None,
            "key": None,
            "registries_d": None,
            "remove_registries_d": False,
        }
        if desired["key_path"] is not None and desired["state"] == "present" and current["key_text"] != desired["key"]:
            actions["key"] = desired["key"]
            diff.append(
                {
                    "before": current["key_text"] or "",
                    "after": desired["key"],
                    "before_header": desired["key_path"],
                    "after_header": desired["key_path"],
                }
            )
        registries_d = desired["registries_d"]
        if registries_d:
            if desired["state"] == "present":
                for other, other_text in sorted(current["other_registries_d"].items()):
                    if scope in namespaces(other_text):
                        raise PolicyError(
                            "%s already configures %s; containers/image refuses a namespace configured in two "
                            "registries.d files: remove it there, or manage it here with registries_d_path=%s"
                            % (other, scope, other)
                        )
                if current["registries_d_text"] is not None and not current["registries_d_text"].startswith(MARKER):
                    raise PolicyError(
                        "%s exists and was not written by this module; give registries_d_path another file or remove it"
                        % registries_d
                    )
                if current["registries_d_text"] != desired["registries_d_text"]:
                    actions["registries_d"] = desired["registries_d_text"]
                    diff.append(
                        {
                            "before": current["registries_d_text"] or "",
                            "after": desired["registries_d_text"],
                            "before_header": registries_d,
                            "after_header": registries_d,
                        }
                    )
            elif current["registries_d_text"] is not None and current["registries_d_text"].startswith(MARKER):
                actions["remove_registries_d"] = True
                diff.append(
                    {
                        "before": current["registries_d_text"],
                        "after": "",
                        "before_header": registries_d,
                        "after_header": registries_d,
                    }
                )
        changed = (
            policy_changed or actions["key"] is not None or actions["registries_d"] is not None or actions["remove_registries_d"]
        )
        return Plan(
            changed=changed,
            diff=diff,
            actions=actions,
            result={
                "transport": transport,
                "scope": scope,
                "requirements": self.requirements_after(after_policy, desired),
                "previous": before,
                "key_path": desired["key_path"],
                "registries_d": registries_d,
            },
        )

    @staticmethod
    def requirements_after(policy: dict, desired: dict) -> Optional[list]:
        if desired["scope"] is None:
            return policy["default"]
        if desired["state"] == "absent":
            return None
        return policy["transports"][desired["transport"]][desired["scope"]]

    def apply(self, host, plan: Plan, desired: dict) -> None:
        actions = plan.actions
        # The key first and the policy last: a policy never names a key that is not there yet.
        if actions["key"] is not None:
            files.replace_file(host.path(desired["key_path"]), actions["key"], 0o644, create_directory=0o755)
        if actions["registries_d"] is not None:
            files.replace_file(host.path(desired["registries_d"]), actions["registries_d"], 0o644, create_directory=0o755)
        if actions["remove_registries_d"]:
            files.remove_file(host.path(desired["registries_d"]))
        if actions["policy"] is not None:
            files.replace_file(host.path(desired["policy_path"]), actions["policy"])

    def report(self, host, plan: Plan, desired: dict) -> None:
        """In check mode, later units of the run (a signed rebase, another entry) read the files this plan writes."""
        if host.check_mode and plan.changed:
            actions = plan.actions
            if actions["key"] is not None:
                host.assume_file(desired["key_path"], actions["key"])
            if actions["registries_d"] is not None:
                host.assume_file(desired["registries_d"], actions["registries_d"])
            if actions["remove_registries_d"]:
                host.assume_file(desired["registries_d"], None)
            if actions["policy"] is not None:
                host.assume_file(desired["policy_path"], actions["policy"])


UNIT = ImagePolicyUnit()
