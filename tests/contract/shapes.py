"""The shape checks of the contract tests: a simulator's document against an example of the contract (key sets,
JSON types, presence rules). Used here and by the lab tests that check the container-image examples on a lab host.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The contract's example documents (../shared/reference/examples), kept with the unit-test fixtures.
EXAMPLES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"


def load_example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def _type(v: Any) -> str:
    return {bool: "bool", int: "int", str: "str", list: "list", dict: "dict", type(None): "null"}[type(v)]


def assert_same_shape(ours: dict[str, Any], example: dict[str, Any], where: str) -> None:
    expected = set(example)
    if ours.get("gpg-enabled") is False:
        expected.discard("signatures")  # presence rule: signatures only when gpg-enabled is true (lab: no GPG)
    assert set(ours) == expected, f"{where}: extra {set(ours) - expected}, missing {expected - set(ours)}"
    for key in expected & set(ours):
        if example[key] is None or ours[key] is None:
            continue
        assert _type(ours[key]) == _type(example[key]), f"{where}.{key}: {ours[key]!r} vs {example[key]!r}"


def assert_status_like(doc: dict[str, Any], example: dict[str, Any]) -> None:
    assert set(doc) == set(example)
    assert len(doc["deployments"]) == len(example["deployments"])
    for i, (ours, ex) in enumerate(zip(doc["deployments"], example["deployments"], strict=True)):
        assert_same_shape(ours, ex, f"deployments[{i}]")
        assert ours["id"] == f"{ours['osname']}-{ours['checksum']}.{ours['serial']}"
    for key in ("transaction", "cached-update", "update-driver"):
        if example[key] is None:
            assert doc[key] is None, key
        elif isinstance(example[key], dict):
            assert_same_shape(doc[key], {k: v for k, v in example[key].items() if k not in ("rpm-diff", "advisories")}, key)
        else:
            assert _type(doc[key]) == _type(example[key]) and len(doc[key]) == len(example[key])


def assert_bootc_like(ours: Any, example: Any, where: str = "") -> None:
    if isinstance(example, dict) and isinstance(ours, dict):
        expected = set(example)
        if "signature" in expected and "signature" not in ours:
            expected.discard("signature")  # presence rule: omitted for ostree-unverified-* origins
        assert set(ours) == expected, f"{where}: {set(ours) ^ expected}"
        for k in expected:
            assert_bootc_like(ours[k], example[k], f"{where}.{k}")
    else:
        assert (ours is None) == (example is None) or _type(ours) == _type(example), where
