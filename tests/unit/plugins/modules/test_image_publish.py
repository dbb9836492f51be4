"""immutable.hosts.image_publish: a build context built, pushed and signed, by the context's digest.

The registry answers as skopeo 1.18 answered on a lab host (fixtures/skopeo): an image built from the lab's
Silverblue 42 image, and ``manifest unknown`` for a tag it does not have. The build and the copy are argv checked
here; the lab test (tests/lab/test_image_mode.py) runs them for real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.image import _publish as publish
from ansible_collections.immutable.hosts.plugins.module_utils.image import _tree as tree
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, run_unit

IMAGE = "registry.lab:5000/fleet/silverblue:42"
PUSHED = "sha256:" + "ab" * 32
KEY = "/etc/immutable-hosts/fleet.key"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    directory = tmp_path / "ctx"
    (directory / "tree/usr/lib/bootc/kargs.d").mkdir(parents=True)
    (directory / "Containerfile").write_text("FROM quay.io/fedora/fedora-silverblue@sha256:%s\n" % ("4f" * 32))
    (directory / "tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml").write_text('kargs = ["preempt=full"]\n')
    (directory / tree.MARKER_FILE).write_text(tree.MARKER + "\n")
    return directory


def digest_of(directory: Path) -> str:
    return tree.context_digest(tree.read_tree(str(directory)))


def inspected(context_digest: str | None) -> str:
    document = json.loads(fixture_text("skopeo/inspect-derived-image.json"))
    if context_digest is not None:
        document["Labels"][publish.CONTEXT_LABEL] = context_digest
    return json.dumps(document)


class Registry(Tools):
    """skopeo and podman answering as the lab registry does; ``copy`` writes the pushed digest to ``--digestfile``."""

    def __init__(self, answers: dict):
        super().__init__(answers, present=("podman", "skopeo"))
        self.stdin = []

    def spawn(self, argv, env, timeout, stdin, cwd):
        if os.path.basename(argv[0]) == "skopeo" and "copy" in argv:
            assert env["LC_ALL"] == "C"
            self.calls.append("skopeo copy")
            self.copy = list(argv)
            self.stdin.append(stdin)
            policy = json.loads(Path(argv[argv.index("--policy") + 1]).read_text())
            assert policy == publish.COPY_POLICY
            registries = Path(argv[argv.index("--registries.d") + 1])
            self.registries_d = {p.name: p.read_text() for p in registries.iterdir()}
            Path(argv[argv.index("--digestfile") + 1]).write_text(PUSHED + "\n")
            return (0, "", "")
        return super().spawn(argv, env, timeout, stdin, cwd)


def inspect_key(name: str, raw: bool = False) -> str:
    return "skopeo inspect --no-tags %sdocker://%s" % ("--raw " if raw else "", name)


def signature(digest: str) -> str:
    return "registry.lab:5000/fleet/silverblue:sha256-%s.sig" % digest.split(":")[1]


def run(tools: Registry, directory: Path, capsys, check: bool = False, **args) -> dict:
    params = {"context": str(directory), "image": IMAGE, "sigstore_private_key": KEY, "sigstore_passphrase": PASSPHRASE}
    params.update(args, _ansible_check_mode=check, _ansible_diff=True)
    return run_unit(publish.UNIT, params, Host(runner=tools.runner()), capsys)


MISSING = (2, "", fixture_text("skopeo/inspect-manifest-unknown.stderr"))
REGISTRY_DIGEST = json.loads(fixture_text("skopeo/inspect-derived-image.json"))["Digest"]


def test_a_new_image_is_built_pushed_and_signed_in_one_copy(context: Path, capsys) -> None:
    wanted = digest_of(context)
    build = "podman build --file %s/Containerfile --label %s=%s --tag %s %s" % (
        context,
        publish.CONTEXT_LABEL,
        wanted,
        IMAGE,
        context,
    )
    tools = Registry({inspect_key(IMAGE): MISSING, build: (0, "", "")})
    result = run(tools, context, capsys)
    assert result["changed"] is True and result["built"] is True, result
    assert result["digest"] == PUSHED
    assert result["reference"] == "registry.lab:5000/fleet/silverblue@" + PUSHED
    assert result["context_digest"] == wanted
    assert tools.calls == [inspect_key(IMAGE), build, "skopeo copy"]
    copy = tools.copy
    assert copy[copy.index("--sign-by-sigstore-private-key") + 1] == KEY
    assert copy[copy.index("--sign-passphrase-file") + 1] == "/dev/stdin"
    assert copy[-2:] == ["containers-storage:" + IMAGE, "docker://" + IMAGE]
    assert tools.stdin == [PASSPHRASE + "\n"]
    assert all(PASSPHRASE not in " ".join(argv) for argv in result["commands"])
    assert PASSPHRASE not in json.dumps(result)
    assert tools.registries_d == {
        "immutable-hosts-publish.yaml": 'docker:\n  "registry.lab:5000/fleet/silverblue":\n    use-sigstore-attachments: true\n'
    }
    assert result["diff"]["before"] == "(absent)\n"
    assert "signed: yes" in result["diff"]["after"]


def test_the_same_context_signed_in_the_registry_changes_nothing(context: Path, capsys) -> None:
    tools = Registry({
        inspect_key(IMAGE): (0, inspected(digest_of(context)), ""),
        inspect_key(signature(REGISTRY_DIGEST), raw=True): (0, '{"schemaVersion": 2}', ""),
    })  # fmt: skip
    result = run(tools, context, capsys)
    assert result["changed"] is False and result["built"] is False
    assert result["digest"] == REGISTRY_DIGEST
    assert result["reference"] == "registry.lab:5000/fleet/silverblue@" + REGISTRY_DIGEST
    assert "diff" not in result
    assert tools.calls == [inspect_key(IMAGE), inspect_key(signature(REGISTRY_DIGEST), raw=True)]


@pytest.mark.parametrize(
    "label, signed, why",
    [(None, True, "context: (none)"), ("sha256:" + "00" * 32, True, "context: sha256:0000"), ("same", False, "signed: no")],
)
def test_a_check_reports_a_build_and_runs_none(context: Path, capsys, label, signed, why) -> None:
    label = digest_of(context) if label == "same" else label
    sig = (0, "{}", "") if signed else MISSING
    tools = Registry({inspect_key(IMAGE): (0, inspected(label), ""), inspect_key(signature(REGISTRY_DIGEST), raw=True): sig})
    result = run(tools, context, capsys, check=True)
    assert result["changed"] is True and result["built"] is False
    assert why in result["diff"]["before"]
    assert "digest" not in result
    assert not any(call.startswith(("podman", "skopeo copy")) for call in tools.calls)


def test_unsigned_only_when_asked(context: Path, capsys) -> None:
    tools = Registry({inspect_key(IMAGE): (0, inspected(digest_of(context)), "")})
    result = run(tools, context, capsys, sign=False, sigstore_private_key=None, sigstore_passphrase=None)
    assert result["changed"] is False and result["signed"] is False
    assert tools.calls == [inspect_key(IMAGE)]  # no signature looked for
    refused = run(Registry({}), context, capsys, sigstore_private_key=None)
    assert refused["failed"] and "sigstore_private_key" in refused["msg"]


@pytest.mark.parametrize(
    "args, words",
    [
        ({"image": "registry.lab:5000/fleet/silverblue@sha256:" + "ab" * 32}, "names a digest"),
        ({"image": "fleet/silverblue:42"}, "names no registry"),
        ({"image": "registry.lab:5000/fleet/silverblue:4 2"}, "whitespace"),
        ({"context": "relative/ctx"}, "absolute"),
        ({"sign": False}, "would not be used"),
        ({"timestamp": -1}, "seconds since the epoch"),
    ],
)
def test_bad_input_fails_before_anything_runs(context: Path, capsys, args, words) -> None:
    tools = Registry({})
    result = run(tools, context, capsys, **args)
    assert result["failed"] and words in result["msg"], result
    assert tools.calls == []


def test_a_directory_that_is_no_context_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other/Containerfile").write_text("FROM x\n")
    tools = Registry({})
    result = run(tools, tmp_path / "other", capsys)
    assert result["failed"] and "image_context first" in result["msg"]
    assert tools.calls == []


def test_a_registry_error_is_not_taken_for_a_missing_image(context: Path, capsys) -> None:
    message = (
        'time="2026-12-05T22:39:01Z" level=fatal msg="Error parsing image name: pinging container registry: '
        'tls: failed to verify certificate: x509: certificate signed by unknown authority"'
    )
    tools = Registry({inspect_key(IMAGE): (1, "", message)})
    result = run(tools, context, capsys)
    assert result["failed"] and "unknown authority" in result["msg"]
    assert tools.calls == [inspect_key(IMAGE)]


def test_the_context_digest_is_image_contexts(context: Path) -> None:
    files = {
        "Containerfile": ((context / "Containerfile").read_text(), 0o644),
        "tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml": ('kargs = ["preempt=full"]\n', 0o644),
    }
    assert tree.context_digest(files) == digest_of(context)
    (context / "Containerfile").write_text("FROM other\n")
    assert tree.context_digest(files) != digest_of(context)
