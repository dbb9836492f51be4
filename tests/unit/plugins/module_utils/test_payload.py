"""The payload's path hook and bytecode cache: our modules inside an AnsiballZ-like ZIP payload compile at most once
(and not at all once a real run has kept them), and import as zipimport would have imported them (names, files,
packages, tracebacks); any other path entry it declines; the cache is root's own, used only for the exact source it
was compiled from, and never breaks an import."""

from __future__ import annotations

import os
import stat
import sys
import time
import traceback
import zipfile
import zipimport

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common import _payload

PACKAGE = "payloadtest_pkg"
COLLECTION = PACKAGE + "/"
MEMBERS = [f"{PACKAGE}/sub/__init__.py", f"{PACKAGE}/sub/leaf.py", f"{PACKAGE}/base.py"]

SOURCES = {
    f"{PACKAGE}/__init__.py": "",
    f"{PACKAGE}/sub/__init__.py": "",
    f"{PACKAGE}/sub/leaf.py": "from payloadtest_pkg import base\nVALUE = base.BASE + 1\n\ndef boom():\n    raise ValueError('from leaf')\n",
    f"{PACKAGE}/base.py": "BASE = 41\n",
    "otherpkg/__init__.py": "",
    "otherpkg/mod.py": "X = 1\n",
}

COMPILED: list = []


def _audit(event, args):
    if event == "compile" and isinstance(args[1], str) and PACKAGE in args[1]:
        COMPILED.append(args[1])


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records compiles of this test's package only


def forget_imports() -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in (PACKAGE, "otherpkg")]:
        del sys.modules[name]


@pytest.fixture
def payload(tmp_path, monkeypatch):
    archive = tmp_path / "ansible_x_payload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, text in SOURCES.items():
            zf.writestr(name, text)
    COMPILED.clear()
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    monkeypatch.setattr(_payload, "_CACHE", None)
    try:
        yield archive
    finally:
        forget_imports()


def fresh_process(monkeypatch) -> None:
    """What the next module run starts from: no hook, nothing imported, nothing cached by the import system."""
    forget_imports()
    monkeypatch.setattr(sys, "path_hooks", [h for h in sys.path_hooks if not hasattr(h, "collection")])
    monkeypatch.setattr(sys, "path_importer_cache", {})
    monkeypatch.setattr(_payload, "_CACHE", None)
    COMPILED.clear()


def test_each_module_compiles_once_and_imports_as_from_the_zip(payload):
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(enabled=False))
    from payloadtest_pkg.sub import leaf  # the import is what is tested

    assert leaf.VALUE == 42
    # each exactly once, by its name in the collection (the same in every run), not by the payload's temporary path
    assert sorted(c for c in COMPILED if not c.startswith(str(payload))) == sorted(MEMBERS)
    assert leaf.boom.__code__.co_filename == f"{PACKAGE}/sub/leaf.py"
    assert leaf.__file__ == f"{payload}/{PACKAGE}/sub/leaf.py"
    assert isinstance(leaf.__spec__.loader, _payload.PayloadLoader)
    assert sys.modules[f"{PACKAGE}.sub"].__path__ == [f"{payload}/{PACKAGE}/sub"]
    # the top-level package came through zipimport (the ZIP file itself is not a directory of the collection) ...
    assert isinstance(sys.modules[PACKAGE].__spec__.loader, zipimport.zipimporter)
    # ... and so does another package in the same payload
    from otherpkg import mod

    assert isinstance(mod.__spec__.loader, zipimport.zipimporter)


def test_directories_imported_before_are_taken_over(payload):
    from payloadtest_pkg import base  # through zipimport: the package's directory is cached with a zipimporter

    assert base.BASE == 41
    assert isinstance(sys.path_importer_cache[f"{payload}/{PACKAGE}"], zipimport.zipimporter)
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(enabled=False))
    assert isinstance(sys.path_importer_cache[f"{payload}/{PACKAGE}"], _payload.PayloadFinder)
    COMPILED.clear()
    from payloadtest_pkg.sub import leaf

    assert COMPILED.count(f"{PACKAGE}/sub/leaf.py") == 1
    assert leaf.VALUE == 42


def test_tracebacks_show_the_source_line(payload):
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(enabled=False))
    from payloadtest_pkg.sub import leaf

    with pytest.raises(ValueError) as caught:
        leaf.boom()
    text = "".join(traceback.format_exception(caught.type, caught.value, caught.tb))
    assert "raise ValueError('from leaf')" in text


def test_any_other_path_entry_is_declined(tmp_path, payload):
    (tmp_path / PACKAGE).mkdir()
    for entry in (str(tmp_path / PACKAGE), str(payload), f"{payload}/otherpkg"):
        with pytest.raises(ImportError):
            _payload.PayloadFinder(entry, COLLECTION)


def test_compile_once_adds_one_hook(monkeypatch):
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    monkeypatch.setattr(_payload, "_CACHE", None)
    before = len(sys.path_hooks)
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(enabled=False))
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(enabled=False))
    assert len(sys.path_hooks) == before + 1
    assert sys.path_hooks[0].collection == COLLECTION


# --- the bytecode cache -----------------------------------------------------------------------------------------------


def cached_names(root) -> list:
    directory = root / sys.implementation.cache_tag
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_a_real_run_keeps_what_it_compiled_and_the_next_run_compiles_nothing(payload, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(str(root), enabled=True))
    from payloadtest_pkg.sub import leaf

    assert leaf.VALUE == 42
    assert cached_names(root) == []  # nothing written while importing
    _payload.keep_compiled()
    names = cached_names(root)
    assert len(names) == len(MEMBERS)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / sys.implementation.cache_tag).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(root / sys.implementation.cache_tag / n).st_mode) == 0o600 for n in names)

    fresh_process(monkeypatch)
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(str(root), enabled=True))
    from payloadtest_pkg.sub import leaf as again

    assert again.VALUE == 42
    assert [c for c in COMPILED if not c.startswith(str(payload))] == []  # every file of ours came from the cache
    with pytest.raises(ValueError) as caught:
        again.boom()
    assert "raise ValueError('from leaf')" in "".join(traceback.format_exception(caught.type, caught.value, caught.tb))


def test_a_changed_source_is_compiled_again_and_a_broken_entry_is_compiled_around(payload, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(str(root), enabled=True))
    from payloadtest_pkg.sub import leaf  # noqa: F401 - compiled and kept below

    _payload.keep_compiled()
    entries = root / sys.implementation.cache_tag
    for name in os.listdir(entries):
        (entries / name).write_bytes(b"not marshal data")

    fresh_process(monkeypatch)
    newer = tmp_path / "ansible_y_payload.zip"  # the next run's payload, with a new version of one file
    with zipfile.ZipFile(newer, "w") as zf:
        for name, text in SOURCES.items():
            zf.writestr(name, "BASE = 1\n" if name == f"{PACKAGE}/base.py" else text)
    monkeypatch.setattr(sys, "path", [str(newer), *sys.path[1:]])
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(str(root), enabled=True))
    from payloadtest_pkg.sub import leaf as again

    assert again.VALUE == 2
    assert sorted(c for c in COMPILED if not c.startswith(str(newer))) == sorted(MEMBERS)


def test_a_cache_directory_that_is_not_roots_alone_is_neither_read_nor_written(payload, tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    os.chmod(root, 0o777)  # noqa: S103 - writable by anyone: not a place root takes code from
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(str(root), enabled=True))
    from payloadtest_pkg.sub import leaf

    assert leaf.VALUE == 42
    _payload.keep_compiled()
    assert cached_names(root) == []


class NoOpUnit:
    ARGUMENT_SPEC: dict = {}
    MODULE_OPTIONS: dict = {}

    def run(self, params, host):
        return {"changed": False}


@pytest.mark.parametrize("check", [True, False])
def test_the_scaffold_keeps_the_code_in_a_real_run_only(check, monkeypatch, capsys):
    from ansible_collections.immutable.hosts.plugins.module_utils.common import _scaffold
    from ansible_collections.immutable.hosts.tests.unit.compat import patch_module_args

    kept = []
    monkeypatch.setattr(_payload, "keep_compiled", lambda: kept.append(True))
    with patch_module_args({"_ansible_check_mode": check}), pytest.raises(SystemExit):
        _scaffold.run_module(NoOpUnit())
    assert '"changed": false' in capsys.readouterr().out
    assert kept == ([] if check else [True])


def test_old_entries_this_run_did_not_use_are_removed_when_it_writes(payload, tmp_path):
    root = tmp_path / "cache"
    entries = root / sys.implementation.cache_tag
    entries.mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    os.chmod(entries, 0o700)
    old, recent = entries / ("a" * 64), entries / ("b" * 64)
    for path in (old, recent):
        path.write_bytes(b"x")
        path.chmod(0o600)
    long_ago = time.time() - (_payload.UNUSED_DAYS + 1) * 86400
    os.utime(old, (long_ago, long_ago))
    _payload.compile_once(COLLECTION, _payload.BytecodeCache(str(root), enabled=True))
    from payloadtest_pkg.sub import leaf  # noqa: F401 - compiled and kept below

    _payload.keep_compiled()
    names = cached_names(root)
    assert old.name not in names
    assert recent.name in names
    assert len(names) == 1 + len(MEMBERS)
