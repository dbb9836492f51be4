# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``immutable.hosts.image_publish``: a build context built with Podman, pushed to a registry and signed, by the
context's digest.

- read: the context's files and their digest (what ``image_context`` returns as ``context_digest``), and what the
  registry holds for the image's tag: ``skopeo inspect`` (its digest and the label this module builds with) and,
  when signing, whether the sigstore signature of that digest is attached (the ``sha256-HEX.sig`` tag);
- plan: nothing to do when the tag's image was built from this very context and is signed as asked;
- apply: ``podman build`` (the label ``io.immutable-hosts.context`` records the context digest), then one ``skopeo
  copy`` from Podman's storage to the registry that signs as it pushes (sigstore, a private key and its passphrase,
  the signature attached in the registry, as cosign attaches it), with ``--digestfile``: the pushed digest.

The copy reads the just-built image under a policy of its own (a local image the module built, not the host's
trust), and writes the signature with a ``registries.d`` of its own that attaches sigstore signatures for the
destination repository, so no host configuration decides whether a signature leaves the machine. The passphrase goes
through a pipe (``--sign-passphrase-file /dev/stdin``), never to a file or the command line.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.image._tree import (
    MARKER_FILE,
    ContextError,
    context_digest,
    read_tree,
)
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _imageref as imageref
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _registry as registry

CONTEXT_LABEL = "io.immutable-hosts.context"
CONTAINERFILE = "Containerfile"
BUILD_TIMEOUT = 3600.0
PUSH_TIMEOUT = 1800.0
# The copy's own policy: the source is the image this module just built, in the host's Podman storage.
COPY_POLICY = {"default": [{"type": "reject"}], "transports": {"containers-storage": {"": [{"type": "insecureAcceptAnything"}]}}}


class PublishError(HostsError, ValueError):
    """The image cannot be built, pushed or signed as asked."""


def destination(name: str) -> imageref.RegistryName:
    try:
        reference = imageref.parse_registry_name(name)
    except (HostsError, ValueError) as exc:
        raise PublishError("image %r: %s" % (name, exc)) from None
    if reference.digest:
        raise PublishError("image %s names a digest; give the repository and tag to push to (registry/name:tag)" % name)
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        raise PublishError("image %s names no registry; give it whole (registry.example.com/fleet/silverblue:42)" % name)
    return reference


def whole_name(reference: imageref.RegistryName) -> str:
    return "%s/%s:%s" % (reference.registry, reference.repository, reference.tag)


def signature_tag(digest: str) -> str:
    """The tag sigstore signatures of ``digest`` are attached as (cosign's convention, which containers/image follows)."""
    algorithm, value = digest.split(":", 1)
    return "%s-%s.sig" % (algorithm, value)


def registry_options(params: dict, prefix: str = "") -> list:
    options = []
    if not params["tls_verify"]:
        options.append("--%stls-verify=false" % prefix)
    if params["authfile"]:
        options += ["--%sauthfile" % prefix, params["authfile"]]
    return options


def inspect(host, params: dict, name: str, raw: bool = False) -> Optional[dict]:
    """``skopeo inspect`` of ``docker://name``: the document, or None when the registry has no such tag."""
    options = registry_options(params) + (["--raw"] if raw else [])
    return registry.skopeo_inspect(host, name, options, PublishError)


def describe(state: Optional[dict]) -> str:
    if state is None:
        return "(absent)\n"
    return "digest: %s\ncontext: %s\nsigned: %s\n" % (
        state.get("digest") or "(new)",
        state.get("context") or "(none)",
        "yes" if state.get("signed") else "no",
    )


class ImagePublishUnit:
    """``immutable.hosts.image_publish``: a build context built, pushed and signed, by the context's digest."""

    ARGUMENT_SPEC = dict(
        context=dict(type="path", required=True),
        image=dict(type="str", required=True),
        sign=dict(type="bool", default=True),
        sigstore_private_key=dict(type="path"),
        sigstore_passphrase=dict(type="str", no_log=True),
        authfile=dict(type="path"),
        tls_verify=dict(type="bool", default=True),
        timestamp=dict(type="int"),
    )
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, host) -> dict:
        if not os.path.isabs(params["context"]):
            raise PublishError("context is an absolute directory, not %r" % params["context"])
        reference = destination(params["image"])
        if params["sign"] and not params["sigstore_private_key"]:
            raise PublishError(
                "sign is true (the default) and no sigstore_private_key is given: give the key that signs the image, or "
                "sign=false for a registry whose images nothing verifies"
            )
        if not params["sign"] and (params["sigstore_private_key"] or params["sigstore_passphrase"]):
            raise PublishError("sign is false: sigstore_private_key and sigstore_passphrase would not be used")
        if params["timestamp"] is not None and params["timestamp"] < 0:
            raise PublishError("timestamp is seconds since the epoch, not %d" % params["timestamp"])
        return dict(params, context=os.path.normpath(params["context"]), name=whole_name(reference), reference=reference)

    def read(self, host, desired: dict) -> dict:
        tree = read_tree(host.path(desired["context"]))
        if tree is None or MARKER_FILE not in tree or CONTAINERFILE not in tree:
            raise ContextError(
                "%s is not a build context (no %s and %s): write it with immutable.hosts.image_context first"
                % (desired["context"], CONTAINERFILE, MARKER_FILE)
            )
        found = inspect(host, desired, desired["name"])
        registry = None
        if found is not None:
            digest = found.get("Digest") or ""
            labels = found.get("Labels") or {}
            registry = {"digest": digest, "context": labels.get(CONTEXT_LABEL), "signed": False}
            if desired["sign"] and digest:
                reference = desired["reference"]
                signature = "%s/%s:%s" % (reference.registry, reference.repository, signature_tag(digest))
                registry["signed"] = inspect(host, desired, signature, raw=True) is not None
        return {"context": context_digest(tree), "registry": registry}

    def plan(self, current: dict, desired: dict) -> Plan:
        registry = current["registry"]
        wanted = {"context": current["context"], "signed": desired["sign"]}
        same = registry is not None and registry["context"] == wanted["context"]
        signed = registry is not None and (registry["signed"] or not desired["sign"])
        changed = not (same and signed)
        result = {
            "image": desired["name"],
            "context_digest": current["context"],
            "signed": desired["sign"],
            "built": False,
        }
        if not changed:
            result["digest"] = registry["digest"]
            result["reference"] = "%s@%s" % (desired["name"].rsplit(":", 1)[0], registry["digest"])
        diff = {
            "before_header": desired["name"],
            "after_header": desired["name"],
            "before": describe(registry),
            "after": describe(wanted),
        }
        return Plan(changed=changed, diff=diff if changed else None, actions={"build": changed}, result=result)

    def apply(self, host, plan: Plan, desired: dict) -> dict:
        context = host.path(desired["context"])
        name = desired["name"]
        build = ["podman", "build", "--file", os.path.join(context, CONTAINERFILE)]
        build += ["--label", "%s=%s" % (CONTEXT_LABEL, plan.result["context_digest"]), "--tag", name]
        if desired["timestamp"] is not None:
            build += ["--timestamp", str(desired["timestamp"])]
        host.run([*build, context], timeout=BUILD_TIMEOUT)
        work = tempfile.mkdtemp(prefix="immutable-hosts-publish-")
        try:
            policy = os.path.join(work, "policy.json")
            with open(policy, "w", encoding="utf-8") as handle:
                json.dump(COPY_POLICY, handle)
            registries_d = os.path.join(work, "registries.d")
            os.mkdir(registries_d, 0o700)
            repository = name.rsplit(":", 1)[0]
            with open(os.path.join(registries_d, "immutable-hosts-publish.yaml"), "w", encoding="utf-8") as handle:
                handle.write("docker:\n  %s:\n    use-sigstore-attachments: true\n" % json.dumps(repository))
            digest_file = os.path.join(work, "digest")
            copy = ["skopeo", "--policy", policy, "--registries.d", registries_d, "copy", "--quiet"]
            copy += ["--digestfile", digest_file, *registry_options(desired, "dest-")]
            stdin = None
            if desired["sign"]:
                copy += ["--sign-by-sigstore-private-key", desired["sigstore_private_key"]]
                if desired["sigstore_passphrase"] is not None:
                    copy += ["--sign-passphrase-file", "/dev/stdin"]
                    stdin = desired["sigstore_passphrase"] + "\n"
            host.run([*copy, "containers-storage:" + name, "docker://" + name], stdin=stdin, timeout=PUSH_TIMEOUT)
            with open(digest_file, encoding="utf-8") as handle:
                digest = handle.read().strip()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return {"digest": digest, "reference": "%s@%s" % (repository, digest), "built": True}


UNIT = ImagePublishUnit()
