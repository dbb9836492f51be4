"""The immutable-hosts wheel carries the collection it drives: galaxy.yml's selection of the checkout (what the
Galaxy tarball holds), under ``immutable_hosts/_collection/ansible_collections/immutable/hosts``. So ``pip install
immutable-hosts`` is enough to run ``immutable-hosts drift``; the CLI prefers a collection ansible finds itself
(see ``immutable_hosts.drift.collection_path``). Everything else is in pyproject.toml.

``collection_files`` is also what ``tools/collection_tree.py`` lays out, so the wheel, the Galaxy tarball and the test
tree hold the same files. setuptools runs this file as ``__main__`` (the build backend too); imported, it only defines
the functions."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BUNDLE = Path("immutable_hosts") / "_collection" / "ansible_collections" / "immutable" / "hosts"
ALWAYS_LEFT_OUT = ("*/__pycache__", "__pycache__", "*.pyc", ".git")


def build_ignore(root: Path = ROOT) -> list[str]:
    """galaxy.yml's build_ignore list (read without a YAML library: the build needs none)."""
    patterns, inside = [], False
    for line in (root / "galaxy.yml").read_text().splitlines():
        if line.startswith("build_ignore:"):
            inside = True
        elif inside and line.startswith("  - "):
            patterns.append(line[4:].split(" #", 1)[0].strip().strip("'\""))
        elif inside and line.strip() and not line.startswith(" "):
            inside = False
    return patterns


def left_out(name: str, patterns: list[str]) -> bool:
    parts = Path(name).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in [*patterns, *ALWAYS_LEFT_OUT])


def collection_files(root: Path = ROOT, patterns: list[str] | None = None) -> list[str]:
    """The checkout's files (tracked and new, as git sees them; every file when there is no git), minus build_ignore
    (``patterns``, galaxy.yml's by default)."""
    patterns = build_ignore(root) if patterns is None else patterns
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split("\0")
    else:
        listed = [
            os.path.relpath(os.path.join(directory, name), root) for directory, _dirs, names in os.walk(root) for name in names
        ]
    return sorted(name for name in filter(None, listed) if (root / name).is_file() and not left_out(name, patterns))


if __name__ == "__main__":
    from setuptools import setup
    from setuptools.command.build_py import build_py

    class BuildWithCollection(build_py):
        def run(self) -> None:
            super().run()
            target = Path(self.build_lib) / BUNDLE
            if target.exists():
                shutil.rmtree(target)
            for name in collection_files():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, target / name)

    setup(cmdclass={"build_py": BuildWithCollection})
