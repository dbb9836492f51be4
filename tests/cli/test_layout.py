"""What ships: the CLI and the lab never reach into the checkout's development tools."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "immutable_hosts"


def test_shipped_code_never_imports_or_runs_development_tools():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value] if "collection_tree" in node.value or node.value.startswith("tools/") else []
            offenders += [
                f"{path.relative_to(SRC)}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] == "tools" or "collection_tree" in name
            ]
    assert offenders == []


def test_the_lab_has_one_api_that_the_cli_uses():
    cli = (SRC / "lab" / "cli.py").read_text()
    assert "from immutable_hosts.lab.api import" in cli
    for step in ("prepare_host", "teardown", "plan_new_hosts", "wait_ready"):
        assert f"def {step}(" not in cli, f"the CLI does {step} itself instead of the API"


def test_the_tarball_holds_no_development_tests_and_no_link_to_what_it_leaves_out():
    import importlib.util
    import os
    import re

    import yaml

    root = SRC.parents[1]
    spec = importlib.util.spec_from_file_location("collection_tree", root / "tools" / "collection_tree.py")
    tree = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tree)
    shipped = set(tree.collection_files(root, yaml.safe_load((root / "galaxy.yml").read_text())["build_ignore"]))
    assert not [name for name in shipped if name.startswith(("tests/cli/", "tests/lab/", "src/", "bench/", "tools/"))]
    assert {"README.md", "CHANGELOG.md", "meta/runtime.yml", "changelogs/changelog.yaml"} <= shipped
    broken = []
    for name in sorted(n for n in shipped if n.endswith(".md")):
        for target in re.findall(r"\]\(([^)#\s]+)", (root / name).read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            normal = os.path.normpath((Path(name).parent / target).as_posix())
            if normal not in shipped and not any(n.startswith(normal.rstrip("/") + "/") for n in shipped):
                broken.append(f"{name} -> {target}")
    assert broken == []
