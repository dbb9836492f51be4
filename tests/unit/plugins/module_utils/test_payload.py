"""The payload's path hook: our modules inside an AnsiballZ-like ZIP payload compile once, and import as zipimport
would have imported them (names, files, packages, tracebacks); any other path entry it declines."""

from __future__ import annotations

import sys
import traceback
import zipfile
import zipimport

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common import _payload

PACKAGE = "payloadtest_pkg"
COLLECTION = PACKAGE + "/"

SOURCES = {
    f"{PACKAGE}/__init__.py": "",
    f"{PACKAGE}/sub/__init__.py": "",
    f"{PACKAGE}/sub/leaf.py": "from payloadtest_pkg import base\nVALUE = base.BASE + 1\n\ndef boom():\n    raise ValueError('from leaf')\n",
    f"{PACKAGE}/base.py": "BASE = 41\n",
    "otherpkg/__init__.py": "",
    "otherpkg/mod.py": "X = 1\n",
}


@pytest.fixture
def payload(tmp_path, monkeypatch):
    archive = tmp_path / "ansible_x_payload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, text in SOURCES.items():
            zf.writestr(name, text)
    compiled = []

    def audit(event, args):
        if event == "compile" and args[1] and str(args[1]).startswith(str(archive)):
            compiled.append(str(args[1]))

    sys.addaudithook(audit)  # audit hooks cannot be removed; this one only records files of this test's archive
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    try:
        yield archive, compiled
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] in (PACKAGE, "otherpkg")]:
            del sys.modules[name]


def test_each_module_compiles_once_and_imports_as_from_the_zip(payload):
    archive, compiled = payload
    _payload.compile_once(COLLECTION)
    from payloadtest_pkg.sub import leaf  # the import is what is tested

    assert leaf.VALUE == 42
    ours = [f"{archive}/{PACKAGE}/sub/__init__.py", f"{archive}/{PACKAGE}/sub/leaf.py", f"{archive}/{PACKAGE}/base.py"]
    assert sorted(c for c in compiled if c in ours) == sorted(ours)  # each exactly once
    assert leaf.__file__ == f"{archive}/{PACKAGE}/sub/leaf.py"
    assert isinstance(leaf.__spec__.loader, _payload.PayloadLoader)
    assert sys.modules[f"{PACKAGE}.sub"].__path__ == [f"{archive}/{PACKAGE}/sub"]
    # the top-level package came through zipimport (the ZIP file itself is not a directory of the collection) ...
    assert isinstance(sys.modules[PACKAGE].__spec__.loader, zipimport.zipimporter)
    # ... and so does another package in the same payload
    from otherpkg import mod

    assert isinstance(mod.__spec__.loader, zipimport.zipimporter)


def test_directories_imported_before_are_taken_over(payload):
    archive, compiled = payload
    from payloadtest_pkg import base  # through zipimport: the package's directory is cached with a zipimporter

    assert base.BASE == 41
    assert isinstance(sys.path_importer_cache[f"{archive}/{PACKAGE}"], zipimport.zipimporter)
    _payload.compile_once(COLLECTION)
    assert isinstance(sys.path_importer_cache[f"{archive}/{PACKAGE}"], _payload.PayloadFinder)
    from payloadtest_pkg.sub import leaf

    assert compiled.count(f"{archive}/{PACKAGE}/sub/leaf.py") == 1
    assert leaf.VALUE == 42


def test_tracebacks_show_the_source_line(payload):
    _payload.compile_once(COLLECTION)
    from payloadtest_pkg.sub import leaf

    with pytest.raises(ValueError) as caught:
        leaf.boom()
    text = "".join(traceback.format_exception(caught.type, caught.value, caught.tb))
    assert "raise ValueError('from leaf')" in text


def test_any_other_path_entry_is_declined(tmp_path, payload):
    archive = payload[0]
    (tmp_path / PACKAGE).mkdir()
    for entry in (str(tmp_path / PACKAGE), str(archive), f"{archive}/otherpkg"):
        with pytest.raises(ImportError):
            _payload.PayloadFinder(entry, COLLECTION)


def test_compile_once_adds_one_hook(monkeypatch):
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    before = len(sys.path_hooks)
    _payload.compile_once(COLLECTION)
    _payload.compile_once(COLLECTION)
    assert len(sys.path_hooks) == before + 1
    assert sys.path_hooks[0].collection == COLLECTION
