"""Image mode: a host follows the image built from its inventory by the digest its tag has now, and layers only what
that image does not provide (its label ``io.immutable-hosts.packages``).

The registry answers as skopeo 1.18 answered on a lab host (fixtures/skopeo); rpm-ostree answers from the contract's
status documents, the host's deployment carrying the layered requests (htop, tmux) it had before image mode.
"""

from __future__ import annotations

import json
import urllib.error

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils import _host_state as host_state
from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.image import _context as context
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _packages as packages
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _registry as registry
from ansible_collections.immutable.hosts.plugins.modules import rebase, rpm_ostree_packages
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot

STATUS = "rpm-ostree status --json"
TAG = "registry.lab:5000/fleet/silverblue:42"
INSPECT = "skopeo inspect --no-tags --no-creds docker://" + TAG
DIGEST = json.loads(fixture_text("skopeo/inspect-derived-image.json"))["Digest"]
PINNED = "registry.lab:5000/fleet/silverblue@" + DIGEST
SIGNED = "ostree-image-signed:docker://" + PINNED
POLICY = {
    "default": [{"type": "reject"}],
    "transports": {"docker": {"registry.lab:5000/fleet": [{"type": "sigstoreSigned", "keyPath": "/etc/pki/fleet.pub"}]}},
}
QUEUED = 'Changes queued for next boot. Run "systemctl reboot" to start a reboot\n'


def inspected(provides: list | None = ("htop", "tmux")) -> str:
    document = json.loads(fixture_text("skopeo/inspect-derived-image.json"))
    if provides is not None:
        document["Labels"][registry.PACKAGES_LABEL] = registry.packages_label(list(provides))
    return json.dumps(document)


def status(origin: str, requested: list, active: list) -> str:
    """The plain Silverblue status with the booted deployment following ``origin`` and layering ``requested``."""
    document = json.loads(fixture_text("rpm-ostree-status-plain-silverblue.json"))
    deployment = document["deployments"][0]
    deployment.update({"origin": origin, "requested-packages": list(requested), "packages": list(active)})
    if origin.startswith("ostree-"):
        deployment["container-image-reference"] = origin
        deployment["container-image-reference-digest"] = origin.rsplit("@", 1)[-1]
    return json.dumps(document)


@pytest.fixture
def host(tmp_path):
    make_sysroot(tmp_path, [])
    (tmp_path / "etc/containers").mkdir(parents=True)
    (tmp_path / "etc/containers/policy.json").write_text(json.dumps(POLICY))
    return tmp_path


def tools(answers: dict) -> Tools:
    return Tools(answers, present=("rpm-ostree", "ostree", "systemctl", "skopeo"))


def test_the_label_lists_what_the_context_installs() -> None:
    digest = "sha256:" + "4f" * 32
    document = {"os": {"rebase": {"image": "quay.io/fedora/fedora-silverblue@" + digest}, "packages": {"name": ["tmux", "htop"]}}}

    class Host:
        def machine(self):
            return "x86_64"

    compiled = context.compile_document(context.checked_document("h", document), {"lint": False}, Host())
    assert '"io.immutable-hosts.packages"="htop,tmux"' in compiled["containerfile"]
    assert registry.provided_packages({registry.PACKAGES_LABEL: "htop,tmux"}) == ["htop", "tmux"]
    assert registry.provided_packages({}) == []


def test_switch_by_digest_drops_the_requests_the_image_provides_in_one_transaction(host, ostree_module) -> None:
    layered = status("fedora:fedora/41/x86_64/silverblue", ["htop", "tmux", "zsh"], ["htop", "tmux", "zsh"])
    switch = "rpm-ostree rebase --uninstall=htop --uninstall=tmux " + SIGNED
    answers = tools({STATUS: (0, layered, ""), INSPECT: (0, inspected(), ""), switch: (0, QUEUED, "")})
    result = ostree_module(rebase, {"image": TAG, "follow": "digest"}, answers)
    assert result["changed"] is True, result
    assert result["origin"] == SIGNED and result["removed"] == ["htop", "tmux"]
    assert result["diff"]["after"]["requested_packages"] == ["zsh"]
    assert [call for call in answers.calls if call.startswith("rpm-ostree rebase")] == [switch]
    assert answers.calls.count(INSPECT) == 1


def test_a_check_predicts_the_switch_and_changes_nothing(host, ostree_module) -> None:
    layered = status("fedora:fedora/41/x86_64/silverblue", ["htop"], ["htop"])
    answers = tools({STATUS: (0, layered, ""), INSPECT: (0, inspected(), "")})
    result = ostree_module(rebase, {"image": TAG, "follow": "digest", "_ansible_check_mode": True}, answers)
    assert result["changed"] is True and result["removed"] == ["htop"]
    assert "layering-changed" in result["reboot_reasons"] and "origin-changed" in result["reboot_reasons"]
    assert not any(call.startswith("rpm-ostree rebase") for call in answers.calls)


def test_following_the_current_digest_is_no_change(host, ostree_module) -> None:
    answers = tools({STATUS: (0, status(SIGNED, [], []), ""), INSPECT: (0, inspected(), "")})
    result = ostree_module(rebase, {"image": TAG, "follow": "digest"}, answers)
    assert result["changed"] is False and result["step"] == "none"
    assert answers.calls == [STATUS, INSPECT] or sorted(answers.calls) == sorted([STATUS, INSPECT])


@pytest.mark.parametrize(
    "image, words",
    [(TAG + "@" + DIGEST, "pinned already"), ("docker://" + TAG, "registry/name:tag"), (None, "give image")],
)
def test_follow_digest_wants_a_registry_tag(host, ostree_module, image, words) -> None:
    args = {"follow": "digest", **({"image": image} if image else {"ref": "fedora/42/x86_64/silverblue"})}
    answers = tools({})
    result = ostree_module(rebase, args, answers)
    assert result["failed"] and words in result["msg"], result
    assert answers.calls == []


def test_a_tag_the_registry_lacks_says_build_it_first(host, ostree_module) -> None:
    missing = (2, "", fixture_text("skopeo/inspect-manifest-unknown.stderr"))
    answers = tools({STATUS: (0, status("fedora:fedora/41/x86_64/silverblue", [], []), ""), INSPECT: missing})
    result = ostree_module(rebase, {"image": TAG, "follow": "digest"}, answers)
    assert result["failed"] and "immutable-hosts image build" in result["msg"]


# --- layered packages in image mode ---------------------------------------------------------------------------------


def test_plan_never_requests_what_the_image_provides_and_drops_it_once_followed() -> None:
    merge = {"requested_packages": ["htop", "vim-enhanced"]}
    before = packages.plan_layering(merge, ["htop", "tmux", "zsh"], "exact", provided=["htop", "tmux"])
    assert before["install"] == ["zsh"] and before["uninstall"] == ["vim-enhanced"]  # htop: the switch drops it
    after = packages.plan_layering(merge, ["htop", "tmux", "zsh"], "exact", provided=["htop", "tmux"], drop_provided=True)
    assert after["install"] == ["zsh"] and after["uninstall"] == ["htop", "vim-enhanced"]
    present = packages.plan_layering(merge, ["htop"], "present", provided=["htop"], drop_provided=True)
    assert present["uninstall"] == ["htop"] and present["install"] == []


def test_on_the_image_a_package_layered_by_hand_is_drift_and_provided_ones_are_not(host, ostree_module) -> None:
    on_image = status(SIGNED, ["vim-enhanced"], ["vim-enhanced"])
    answers = tools({STATUS: (0, on_image, ""), INSPECT: (0, inspected(), "")})
    args = {"name": ["htop", "tmux"], "state": "exact", "provided_by": TAG, "_ansible_check_mode": True, "_ansible_diff": True}
    result = ostree_module(rpm_ostree_packages, args, answers)
    assert result["changed"] is True and result["removed"] == ["vim-enhanced"]
    assert result["provided_by_image"] == ["htop", "tmux"] and result["installed"] == []
    clean = tools({STATUS: (0, status(SIGNED, [], []), ""), INSPECT: (0, inspected(), "")})
    assert ostree_module(rpm_ostree_packages, dict(args), clean)["changed"] is False


def test_host_state_gives_the_packages_the_rebase_image() -> None:
    document = {"os": {"rebase": {"image": TAG, "follow": "digest"}, "packages": {"name": ["htop"], "state": "exact"}}}
    found = host_state.resources(document)
    host_state.stack_image_mode(found)
    layered = next(r for r in found if r.module == "rpm_ostree_packages")
    assert layered.params["provided_by"] == TAG
    tagged = host_state.resources({"os": {"rebase": {"image": TAG}, "packages": {"name": ["htop"]}}})
    host_state.stack_image_mode(tagged)
    assert next(r for r in tagged if r.module == "rpm_ostree_packages").params.get("provided_by") is None


# --- a COPR project in the image ------------------------------------------------------------------------------------

BASE = "quay.io/fedora/fedora-silverblue@sha256:" + "4f" * 32
# What copr.fedorainfracloud.org serves for /coprs/atim/starship/repo/fedora-42/dnf.repo?arch=x86_64.
STARSHIP = """[copr:copr.fedorainfracloud.org:atim:starship]
name=Copr repo for starship owned by atim
baseurl=https://download.copr.fedorainfracloud.org/results/atim/starship/fedora-$releasever-$basearch/
type=rpm-md
skip_if_unavailable=True
gpgcheck=1
gpgkey=https://download.copr.fedorainfracloud.org/results/atim/starship/pubkey.gpg
repo_gpgcheck=0
enabled=1
enabled_metadata=1
"""
SERVED = "https://copr.fedorainfracloud.org/coprs/atim/starship/repo/fedora-42/dnf.repo?arch=x86_64"


class Hub(Host):
    """The build host: COPR's hub answers its HTTPS reads (anything else: 404)."""

    def _fetch(self, location, limit):
        if location != SERVED:
            raise urllib.error.HTTPError(location, 404, "Not Found", {}, None)
        return STARSHIP.encode()[:limit]


def copr_document() -> dict:
    return {"os": {"rebase": {"image": BASE}, "repos": [{"copr": "atim/starship"}], "packages": {"name": ["starship"]}}}


def test_a_copr_project_goes_in_the_image_for_the_release_its_base_names(tmp_path) -> None:
    base_inspect = json.loads(fixture_text("skopeo/inspect-derived-image.json"))  # version label 42.20250416.0
    answers = tools({"skopeo inspect --no-tags docker://" + BASE: (0, json.dumps(base_inspect), "")})
    host = Hub(runner=answers.runner(), root=str(tmp_path), machine="x86_64")
    compiled = context.compile_document(context.checked_document("h", copr_document()), {"lint": False}, host)
    path = "tree/etc/yum.repos.d/_copr:copr.fedorainfracloud.org:atim:starship.repo"
    assert compiled["files"][path][0] == STARSHIP
    assert 'RUN ["dnf", "-y", "install", "starship"]' in compiled["containerfile"]
    assert not [entry for entry in compiled["runtime"] if entry["module"] == "rpm_repo"]
    assert answers.calls == ["skopeo inspect --no-tags docker://" + BASE]


def test_a_copr_chroot_given_needs_no_base_inspection_and_a_base_without_release_is_refused(tmp_path) -> None:
    document = copr_document()
    document["os"]["repos"] = [{"copr": "atim/starship", "copr_chroot": "fedora-42-x86_64"}]
    answers = tools({})
    host = Hub(runner=answers.runner(), root=str(tmp_path), machine="x86_64")
    compiled = context.compile_document(context.checked_document("h", document), {"lint": False}, host)
    assert any(name.endswith("atim:starship.repo") for name in compiled["files"]) and answers.calls == []
    unlabelled = json.loads(fixture_text("skopeo/inspect-derived-image.json"))
    del unlabelled["Labels"]["org.opencontainers.image.version"]
    answers = tools({"skopeo inspect --no-tags docker://" + BASE: (0, json.dumps(unlabelled), "")})
    host = Hub(runner=answers.runner(), root=str(tmp_path), machine="x86_64")
    with pytest.raises(context.ContextError, match="copr_chroot"):
        context.compile_document(context.checked_document("h", copr_document()), {"lint": False}, host)
