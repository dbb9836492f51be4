"""Lay out the collection as ``ansible_collections/immutable/hosts`` for ansible-test, pytest and ansible-doc.

ansible-test needs the collection under that path and tests only files git tracks there, so the tree is a fresh
copy of the checkout's files (tracked and new, minus galaxy.yml's ``build_ignore``) in its own git index.
The same ``build_ignore`` list decides what the Galaxy tarball holds, so the tree is exactly the collection.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from setup import collection_files  # noqa: E402 - the wheel's selection of the checkout: one list for all three


def build_tree(root: Path, dest: Path) -> int:
    meta = yaml.safe_load((root / "galaxy.yml").read_text())
    target = dest / "ansible_collections" / meta["namespace"] / meta["name"]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    files = collection_files(root, meta.get("build_ignore", []))
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name)
    git = ["git", "-c", "init.defaultBranch=main", "-C", str(target)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    print("collection tree: %s (%d files)" % (target, len(files)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dest", type=Path, help="directory that receives ansible_collections/")
    args = parser.parse_args()
    return build_tree(ROOT, args.dest.resolve())


if __name__ == "__main__":
    sys.exit(main())
