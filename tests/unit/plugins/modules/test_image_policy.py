"""immutable.hosts.image_policy on real files: Fedora's stock policy.json, registries.d, keys under /etc/pki."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.containers import _policy as policy
from ansible_collections.immutable.hosts.plugins.modules import image_policy as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import run_file_unit

# Fedora 41's /etc/containers/policy.json (containers-common), as shipped: a tab-indented file.
FEDORA_POLICY = """{
\t"default": [
\t\t{
\t\t\t"type": "insecureAcceptAnything"
\t\t}
\t],
\t"transports": {
\t\t"docker": {
\t\t\t"registry.access.redhat.com": [
\t\t\t\t{
\t\t\t\t\t"type": "signedBy",
\t\t\t\t\t"keyType": "GPGKeys",
\t\t\t\t\t"keyPaths": ["/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release", "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-beta"]
\t\t\t\t}
\t\t\t],
\t\t\t"registry.redhat.io": [
\t\t\t\t{
\t\t\t\t\t"type": "signedBy",
\t\t\t\t\t"keyType": "GPGKeys",
\t\t\t\t\t"keyPaths": ["/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release", "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-beta"]
\t\t\t\t}
\t\t\t]
\t\t},
\t\t"docker-daemon": {
\t\t\t"": [
\t\t\t\t{
\t\t\t\t\t"type": "insecureAcceptAnything"
\t\t\t\t}
\t\t\t]
\t\t}
\t}
}
"""
# A P-256 public key as cosign writes it (cosign generate-key-pair).
COSIGN_PUB = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3vPTrbKH5V6uVgS4mFSSSvC2M/uY
wpwU/nt7VAoPHHE1aZwv5CYDtbE/i2P20VcZb8Jx4fYjhkWmzLQgSh6d1w==
-----END PUBLIC KEY-----
"""
# registries.d as Fedora ships it, plus a file an administrator wrote.
DEFAULT_YAML = """# This is a default registries.d configuration file.
default-docker:
#  lookaside: file:///var/lib/containers/sigstore
  lookaside-staging: file:///var/lib/containers/sigstore
"""
ADMIN_YAML = """docker:
    'quay.io/fedora':
        use-sigstore-attachments: true
    registry.example.com:
        lookaside: https://sigs.example.com
"""


@pytest.fixture
def run(tmp_path, capsys):
    etc = tmp_path / "etc/containers"
    (etc / "registries.d").mkdir(parents=True)
    (etc / "policy.json").write_text(FEDORA_POLICY)
    (etc / "registries.d/default.yaml").write_text(DEFAULT_YAML)

    def run(args, check=False):
        return run_file_unit(module.UNIT, args, tmp_path, capsys, check)

    run.root = tmp_path
    return run


def read_policy(root) -> dict:
    return json.loads((root / "etc/containers/policy.json").read_text())


def test_trust_a_namespace_writes_key_registries_d_and_policy_then_converges(run):
    args = {"scope": "quay.io/fedora", "key": COSIGN_PUB}
    checked = run(args, check=True)
    assert checked["changed"] is True and (run.root / "etc/containers/policy.json").read_text() == FEDORA_POLICY
    assert not (run.root / "etc/pki").exists() and not (run.root / "etc/containers/registries.d/quay.io-fedora.yaml").exists()
    assert [d["after_header"] for d in checked["diff"]] == [
        "/etc/containers/policy.json", "/etc/pki/containers/quay.io-fedora.pub", "/etc/containers/registries.d/quay.io-fedora.yaml"
    ]  # fmt: skip

    first = run(args)
    assert first["changed"] is True and first["diff"] == checked["diff"]
    after = read_policy(run.root)
    assert after["transports"]["docker"]["quay.io/fedora"] == [
        {
            "type": "sigstoreSigned",
            "keyPath": "/etc/pki/containers/quay.io-fedora.pub",
            "signedIdentity": {"type": "matchRepository"},
        }
    ]
    # Everything else kept, in order, and the file keeps its tabs.
    assert list(after["transports"]["docker"]) == ["registry.access.redhat.com", "registry.redhat.io", "quay.io/fedora"]
    assert after["default"] == [{"type": "insecureAcceptAnything"}] and "docker-daemon" in after["transports"]
    assert (run.root / "etc/containers/policy.json").read_text().startswith('{\n\t"default"')
    assert (run.root / "etc/pki/containers/quay.io-fedora.pub").read_text() == COSIGN_PUB
    yaml = (run.root / "etc/containers/registries.d/quay.io-fedora.yaml").read_text()
    assert policy.namespaces(yaml) == ["quay.io/fedora"] and "use-sigstore-attachments: true" in yaml
    assert oct((run.root / "etc/pki/containers/quay.io-fedora.pub").stat().st_mode & 0o777) == "0o644"

    second = run(args)
    assert second["changed"] is False and second["previous"] == second["requirements"]


def test_inline_key_and_a_changed_key_and_absent(run):
    run({"scope": "quay.io/fedora", "key": COSIGN_PUB, "key_inline": True})
    requirement = read_policy(run.root)["transports"]["docker"]["quay.io/fedora"][0]
    assert base64.b64decode(requirement["keyData"]).decode() == COSIGN_PUB and "keyPath" not in requirement
    assert not (run.root / "etc/pki").exists()
    moved = run({"scope": "quay.io/fedora", "key": COSIGN_PUB})
    assert moved["changed"] is True and moved["previous"] == [requirement]
    removed = run({"scope": "quay.io/fedora", "state": "absent"})
    assert removed["changed"] is True and "quay.io/fedora" not in read_policy(run.root)["transports"]["docker"]
    assert not (run.root / "etc/containers/registries.d/quay.io-fedora.yaml").exists()
    assert (run.root / "etc/pki/containers/quay.io-fedora.pub").exists()  # a key file stays
    assert run({"scope": "quay.io/fedora", "state": "absent"})["changed"] is False


def test_reject_and_gpg_signed_by_with_lookaside(run):
    assert run({"scope": "registry.example.org", "type": "reject"})["changed"] is True
    assert read_policy(run.root)["transports"]["docker"]["registry.example.org"] == [{"type": "reject"}]
    assert not (run.root / "etc/containers/registries.d/registry.example.org.yaml").exists()
    gpg = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGN\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"
    result = run({"scope": "registry.example.net/team", "type": "signedBy", "key": gpg, "lookaside": "https://sigs.example.net"})
    requirement = read_policy(run.root)["transports"]["docker"]["registry.example.net/team"][0]
    assert requirement == {
        "type": "signedBy",
        "keyType": "GPGKeys",
        "keyPath": "/etc/pki/containers/registry.example.net-team.gpg",
    }
    assert result["registries_d"] == "/etc/containers/registries.d/registry.example.net-team.yaml"
    yaml = (run.root / "etc/containers/registries.d/registry.example.net-team.yaml").read_text()
    assert 'lookaside: "https://sigs.example.net"' in yaml and "use-sigstore-attachments" not in yaml


def test_the_global_default_and_the_docker_default(run):
    """What rpm-ostree needs for ostree-image-signed: a default other than a lone insecureAcceptAnything, while the
    docker transport's own default keeps every other pull working."""
    assert run({"type": "insecureAcceptAnything", "scope": ""})["changed"] is True
    result = run({"type": "reject"})
    assert result["changed"] is True and result["previous"] == [{"type": "insecureAcceptAnything"}]
    after = read_policy(run.root)
    assert after["default"] == [{"type": "reject"}] and after["transports"]["docker"][""] == [{"type": "insecureAcceptAnything"}]
    assert run({"type": "reject"})["changed"] is False
    refused = run({"state": "absent"})
    assert refused["failed"] is True and "cannot be removed" in refused["msg"]


def test_another_registries_d_file_for_the_same_namespace_is_refused(run):
    (run.root / "etc/containers/registries.d/admin.yaml").write_text(ADMIN_YAML)
    assert policy.namespaces(ADMIN_YAML) == ["quay.io/fedora", "registry.example.com"]
    result = run({"scope": "quay.io/fedora", "key": COSIGN_PUB})
    assert result["failed"] is True and "admin.yaml already configures quay.io/fedora" in result["msg"]
    assert (run.root / "etc/containers/policy.json").read_text() == FEDORA_POLICY and not (run.root / "etc/pki").exists()
    # Managing that file's scope in that file is refused too (it is not ours), with the way out named.
    again = run({"scope": "quay.io/fedora", "key": COSIGN_PUB, "registries_d_path": "/etc/containers/registries.d/admin.yaml"})
    assert again["failed"] is True and "was not written by this module" in again["msg"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"default": []}', "default: a non-empty list"),
        (
            '{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"Quay.IO/Fedora": [{"type": "reject"}]}}}',
            "is not a docker scope",
        ),
        ('{"default": [{"type": "reject", "keyPath": "/x"}]}', "has no field 'keyPath'"),
        ('{"default": [{"type": "insecureAcceptAnything"}], "default": [{"type": "reject"}]}', "duplicate key"),
        ('{"default": [{"type": "insecureAcceptAnything"},]}', "not valid JSON"),
        ('{"default": [{"type": "sigstoreSigned", "keyPath": "/a", "keyData": "eA=="}]}', "exactly one of"),
    ],
)
def test_an_invalid_policy_on_the_host_is_refused_and_kept(run, text, message):
    (run.root / "etc/containers/policy.json").write_text(text)
    result = run({"scope": "quay.io/fedora", "key": COSIGN_PUB})
    assert result["failed"] is True and message in result["msg"] and "fix it first" in result["msg"]
    assert (run.root / "etc/containers/policy.json").read_text() == text


def test_policy_problems_follow_containers_policy_json_5() -> None:
    good = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                "*.example.com": [{"type": "insecureAcceptAnything"}],
                "quay.io/fedora/fedora-silverblue:42": [{"type": "sigstoreSigned", "keyPaths": ["/a", "/b"]}],
                "host:5000/ns@sha256:" + "a" * 64: [
                    {
                        "type": "signedBy",
                        "keyType": "GPGKeys",
                        "keyData": "eA==",
                        "signedIdentity": {"type": "remapIdentity", "prefix": "host:5000/ns", "signedPrefix": "quay.io/ns"},
                    }
                ],
            },
            "dir": {"/srv/images": [{"type": "insecureAcceptAnything"}]},
            "docker-archive": {"": [{"type": "reject"}]},
        },
    }  # fmt: skip
    assert policy.policy_problems(good) == []
    bad = {
        "default": [{"type": "signedBy", "keyType": "X509", "keyPath": "relative"}],
        "transports": {
            "docker": {
                "quay.io/": [{"type": "insecureAcceptAnything"}],
                "q.io/x": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/c"}}],
            },
            "dir": {"/": [{"type": "reject"}]},
            "tarball": {"/x": [{"type": "reject"}]},
            "nfs": {"": [{"type": "reject"}]},
        },
        "extra": 1,
    }
    problems = "\n".join(policy.policy_problems(bad))
    for expected in (
        "no field 'extra'", 'keyType "GPGKeys"', "keyPath is an absolute path", "'quay.io/' is not a docker scope",
        "fulcio needs a rekorPublicKey", "absolute path other than", "only the default scope", "'nfs' is not a transport",
    ):  # fmt: skip
        assert expected in problems, (expected, problems)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"scope": "quay.io/fedora"}, "needs the public key"),
        ({"scope": "quay.io/fedora", "key": "not a key"}, "is not a PEM public key"),
        ({"scope": "quay.io/fedora", "key": COSIGN_PUB, "type": "signedBy"}, "ASCII-armored OpenPGP"),
        ({"scope": "quay.io/fedora", "type": "reject", "key": COSIGN_PUB}, "is for signed types"),
        ({"scope": "Quay.io/Fedora", "key": COSIGN_PUB}, "is not a docker scope"),
        ({"scope": "quay.io/fedora\u2028", "key": COSIGN_PUB}, "U+2028"),
        ({"scope": "", "key": COSIGN_PUB}, "registries.d needs a registry or namespace"),
        ({"scope": "/srv", "transport": "dir", "key": COSIGN_PUB, "use_sigstore_attachments": True}, "transport=docker only"),
        ({"scope": "x", "transport": "tarball", "type": "reject"}, "only the default scope"),
        ({"scope": "quay.io/fedora", "key": COSIGN_PUB, "key_inline": True, "key_path": "/etc/k.pub"}, "exclude each other"),
        ({"scope": "quay.io/fedora", "key_path": "keys/k.pub"}, "absolute path"),
        ({"scope": "quay.io/x", "type": "signedBy", "key_path": "/k", "lookaside": "ftp://x"}, "lookaside is an http"),
        ({"scope": "quay.io/x", "key": COSIGN_PUB, "signed_identity": {"type": "exactRepository"}}, "needs 'dockerRepository'"),
        (
            {"scope": "quay.io/x", "key": COSIGN_PUB, "signed_identity": {"type": "matchRepository", "prefix": "quay.io"}},
            "has no field 'prefix'",
        ),
        ({"scope": "quay.io/x", "type": "sometimes"}, "value of type must be one of"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(run, args, message):
    result = run(args)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert (run.root / "etc/containers/policy.json").read_text() == FEDORA_POLICY and not (run.root / "etc/pki").exists()


def test_namespaces_of_yaml_forms() -> None:
    text = (
        "# c\ndefault-docker:\n  lookaside: x\n"
        'docker:\n  "a.io/x": {use-sigstore-attachments: true}\n  b.io:\n    lookaside: y\n  # gone.io:\n'
        "other:\n  c.io: 1\n"
    )
    assert policy.namespaces(text) == ["a.io/x", "b.io"]
