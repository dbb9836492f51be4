"""`immutable-hosts drift`: the report renderers (from a recorded drift.json), the exit codes, and the command end
to end against localhost with a real ansible-playbook and the real callback (the checkout laid out as a collection)."""

from __future__ import annotations

import copy
import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from immutable_hosts import cli, drift

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def document() -> dict:
    return drift.load_report(DATA / "drift.json")


class Collect(HTMLParser):
    """Tags, attributes and text of an HTML document; fails on a closing tag that closes nothing open."""

    VOID = {"meta", "br", "link", "img", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_load_report_refuses_what_is_not_a_drift_document(tmp_path):
    with pytest.raises(drift.DriftError, match="no drift report"):
        drift.load_report(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something/1", "hosts": {}}))
    with pytest.raises(drift.DriftError, match=r"not an immutable\.hosts\.drift/1 document"):
        drift.load_report(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(drift.DriftError, match="not JSON"):
        drift.load_report(tmp_path / "broken.json")


def test_exit_codes(document):
    assert drift.exit_code(document) == 1  # bootc-1 is unreachable
    reachable = copy.deepcopy(document)
    del reachable["hosts"]["bootc-1"]
    assert drift.exit_code(reachable) == 2
    assert drift.exit_code(reachable, ansible_rc=2) == 2  # failed hosts come from the document, not from rc 2
    assert drift.exit_code(reachable, ansible_rc=1) == 1  # an Ansible error (syntax, missing role, ...)
    assert drift.exit_code(reachable, ansible_rc=250) == 1
    in_sync = {**reachable, "hosts": {"silverblue-2": reachable["hosts"]["silverblue-2"]}}
    assert drift.exit_code(in_sync) == 0
    failed = copy.deepcopy(in_sync)
    failed["hosts"]["silverblue-2"]["status"] = "failed"
    assert drift.exit_code(failed) == 1
    assert drift.exit_code({**document, "hosts": {}}) == 1  # nothing matched: not "no drift"


def test_markdown(document):
    text = drift.render_markdown(document)
    assert "**4 hosts**: 1 in sync, 2 drifted, 0 failed, 1 unreachable; 3 changes pending." in text
    assert "| silverblue-1 | drifted | 2 | copy /etc/motd \\<managed\\>, layered packages |" in text
    assert "| bootc-1 | unreachable | 0 | Failed to connect to the host via ssh: Connection refused |" in text
    assert "| host | copy /etc/motd \\<managed\\> | flatpak\\_remote flathub | layered packages |" in text
    assert "| silverblue-1 | drift |  | drift |" in text
    assert "| silverblue-2 |  |  |  |" in text
    # data diffs as indented JSON, text diffs as they are
    assert "```diff\n--- before\n+++ after\n@@ " in text
    assert '-    "tmux"' in text and '-    "htop",' in text and '+    "htop"' in text
    assert "--- /etc/motd\n+++ /etc/motd\n@@ -1,2 +1,2 @@\n Hello\n-old line\n+new line\n```" in text
    assert "- failed (ignored): **Optional probe**: rc 1" in text
    assert "- not checked: **Custom script**: Command would have run if not in check mode" in text
    assert "## silverblue-2: in sync\n\nNo drift." in text


def test_html_is_self_contained_well_formed_and_escaped(document):
    page = drift.render_html(document)
    parsed = Collect()
    parsed.feed(page)
    parsed.close()
    assert parsed.stack == ["html"] or parsed.stack == []  # the parser leaves the root open only if unclosed
    tags = parsed.tags
    # self-contained: no scripts, stylesheets, images or any other fetched asset
    assert not [t for t, a in tags if t in ("script", "link", "img", "iframe") or "src" in a]
    assert "http://" not in page and "https://" not in page
    assert "copy /etc/motd &lt;managed&gt;" in page and "<managed>" not in page
    rows = [a["data-host"] for t, a in tags if t == "tr" and "data-host" in a]
    assert rows == ["bootc-1", "kinoite-1", "silverblue-1", "silverblue-2"]
    cells = [a["data-resource"] for t, a in tags if t == "td" and "data-resource" in a]
    assert cells == ["flatpak_remote flathub", "copy /etc/motd <managed>", "layered packages"]
    details = [a["id"] for t, a in tags if t == "details"]
    assert details == [
        "d-kinoite-1-flatpak-remote-flathub",
        "d-silverblue-1-layered-packages",
        "d-silverblue-1-copy--etc-motd--managed-",
    ]
    links = {a["href"][1:] for t, a in tags if t == "a"}
    ids = {a["id"] for t, a in tags if "id" in a}
    assert links <= ids  # every matrix cell and host link has its target
    text = "".join(parsed.text)
    assert "Unreachable: Failed to connect to the host via ssh" in text
    assert '-    "tmux"' in text
    # an unreachable host is not "no drift" in the grid: each of its cells says it was not checked
    unknown = [a for t, a in tags if t == "td" and a.get("class") == "cell-unknown"]
    assert len(unknown) == 3 and {a["title"] for a in unknown} == {"not checked: unreachable"}
    assert "1tasks not checked" in text  # kinoite-1 has one task the check could not run


def test_host_data_cannot_break_out_of_the_markdown(document):
    """A host name, task or diff line from a host is text: a line of three backticks stays inside its block, a
    table cell stays a cell, and markup stays literal."""
    hostile = copy.deepcopy(document)
    host = hostile["hosts"].pop("silverblue-1")
    host["changes"][0]["task"] = "evil | <img src=x onerror=alert(1)> *bold*"
    host["changes"][0]["diff"] = [{"before": "a\n", "after": "```\n# Injected heading\n[link](http://x)\n"}]
    hostile["hosts"]["web|`x`"] = host
    text = drift.render_markdown(hostile)
    assert "| web\\|\\`x\\` | drifted |" in text
    assert "evil \\| \\<img src=x onerror=alert(1)\\> \\*bold\\*" in text
    block = text[text.index("````diff") :]
    assert block.index("+```") < block.index("\n````\n"), "the fence must be longer than the backticks inside"
    assert "\n# Injected heading" not in text


def test_reports_are_private_to_their_reader(document, tmp_path):
    """Diffs carry values from the hosts (environment variables): no report is readable by others."""
    paths = drift.write_reports(document, tmp_path)
    assert {path.name: path.stat().st_mode & 0o777 for path in paths.values()} == {
        "drift.json": 0o600,
        "drift.md": 0o600,
        "drift.html": 0o600,
    }


def test_write_reports_and_summary_table(document, tmp_path):
    paths = drift.write_reports(document, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.html", "drift.json", "drift.md"]
    assert json.loads(paths["json"].read_text()) == document
    console = Console(record=True, width=200)
    console.print(drift.summary_table(document))
    table = console.export_text()
    assert "silverblue-1 │ drifted     │ 2       │ copy /etc/motd <managed>, layered packages" in table
    assert "silverblue-2 │ in sync" in table


def test_progress_reads_complete_event_lines(tmp_path):
    events = tmp_path / "events.jsonl"
    progress = drift.HostProgress()
    progress.feed(events)  # not there yet
    events.write_text('{"host": "a", "task": "t1", "status": "ok", "changed": true}\n{"host": "b", "task": "t1", "stat')
    progress.feed(events)
    assert progress.hosts == {"a": {"tasks": 1, "changed": 1, "failed": 0, "state": "running", "task": "t1"}}
    with events.open("a") as handle:
        handle.write('us": "unreachable", "changed": false}\n')
    progress.feed(events)
    assert progress.hosts["b"]["state"] == "unreachable"
    console = Console(record=True, width=120)
    console.print(progress.table())
    assert "a" in console.export_text()


def test_without_a_terminal_one_line_per_host_as_it_finishes(tmp_path):
    """In CI or a pipe: the unreachable host is reported while the play still runs, the others when it ends."""
    import io

    events, log, marker = tmp_path / "events.jsonl", tmp_path / "log", tmp_path / "seen"
    script = (
        "import json, os, sys, time\n"
        "events, marker = sys.argv[1], sys.argv[2]\n"
        "def emit(**e):\n"
        "    open(events, 'a').write(json.dumps(e) + '\\n')\n"
        "emit(host='web-1', task='t1', status='ok', changed=True)\n"
        "emit(host='web-2', task='t1', status='unreachable', changed=False)\n"
        "deadline = time.time() + 30\n"
        "while not os.path.exists(marker) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        "emit(host='web-1', task='t2', status='ok', changed=False)\n"
    )
    buffer = io.StringIO()
    # the play goes on only once the unreachable host was reported
    console = PipeConsole(buffer, lambda: marker.touch() if "web-2" in buffer.getvalue() else None)
    argv = [sys.executable, "-c", script, str(events), str(marker)]
    assert drift.run_with_progress(argv, dict(os.environ), events, log, console) == 0
    assert buffer.getvalue().splitlines() == [
        "web-2: unreachable, 1 tasks, 0 would change, 0 failed",
        "web-1: checked, 2 tasks, 1 would change, 0 failed",
    ]


class PipeConsole(Console):
    """A console on a pipe (not a terminal) that calls ``after_print`` after each line."""

    def __init__(self, buffer, after_print) -> None:
        super().__init__(file=buffer, width=200, force_terminal=False)
        self.after_print = after_print

    def print(self, *args, **kwargs) -> None:
        super().print(*args, **kwargs)
        self.after_print()


# --- the command, end to end on localhost -----------------------------------------------------------------------------


def write_inventory(tmp_path: Path, dead: bool = False) -> Path:
    hosts = {"local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
    if dead:
        hosts["dead"] = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    return inventory


def write_playbook(tmp_path: Path, target: Path) -> Path:
    playbook = tmp_path / "drift.yml"
    playbook.write_text(
        f"""
- name: Desired state
  hosts: all
  gather_facts: false
  tasks:
    - name: Message of the day
      ansible.builtin.copy: {{dest: "{target}", content: "managed\\n"}}
"""
    )
    return playbook


@pytest.fixture
def no_collections_path(monkeypatch):
    """The checkout is laid out as a collection for the run, as for a developer without the collection installed."""
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH", raising=False)
    monkeypatch.setenv("ANSIBLE_SSH_ARGS", "-o ConnectTimeout=5")


def test_command_exits_0_in_sync_and_2_on_drift(tmp_path, capsys, no_collections_path):
    target = tmp_path / "motd"
    target.write_text("managed\n")
    inventory, playbook = write_inventory(tmp_path), write_playbook(tmp_path, target)
    argv = ["drift", "-i", str(inventory), "--playbook", str(playbook), "--report-dir", str(tmp_path / "r")]
    assert cli.main(argv) == 0
    assert "no drift" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "drift.json").read_text())["hosts"]["local"]["status"] == "in_sync"

    target.write_text("changed by hand\n")
    assert cli.main(argv) == 2
    out = capsys.readouterr().out
    assert "local" in out and "drifted" in out and "drift found" in out
    assert target.read_text() == "changed by hand\n"  # check mode
    report = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert report["hosts"]["local"]["changes"][0]["resource"] == f"copy {target}"
    assert "-changed by hand" in (tmp_path / "r" / "drift.md").read_text()
    assert "changed by hand" in (tmp_path / "r" / "drift.html").read_text()


def test_command_exits_1_on_an_unreachable_host_and_on_errors(tmp_path, capsys, no_collections_path):
    target = tmp_path / "motd"
    target.write_text("managed\n")
    inventory, playbook = write_inventory(tmp_path, dead=True), write_playbook(tmp_path, target)
    argv = ["drift", "-i", str(inventory), "--playbook", str(playbook), "--report-dir", str(tmp_path / "r")]
    assert cli.main(argv) == 1
    assert "unreachable" in capsys.readouterr().out

    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: all\n  tasks:\n    - no.such.module: {}\n")
    assert cli.main([*argv[:3], "--playbook", str(broken), "--report-dir", str(tmp_path / "r2")]) == 1
    err = capsys.readouterr().err
    assert "drift:" in err and "no.such.module" in err  # the tail of ansible's log says why

    assert cli.main(["drift", "-i", str(tmp_path / "nope.yml"), "--playbook", str(playbook)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_rollouts_rings_are_a_table_of_their_own(document):
    """A report of playbooks/upgrade.yml names each host's ring: Markdown and HTML show the rings first, in order."""
    names = sorted(document["hosts"])
    for index, name in enumerate(names):
        document["hosts"][name]["ring"] = "canary" if index == 0 else "all"
    document["summary"]["rings"] = [
        {"ring": "canary", "hosts": 1, "in_sync": 1, "drifted": 0, "failed": 0, "unreachable": 0},
        {"ring": "all", "hosts": len(names) - 1, "in_sync": 0, "drifted": len(names) - 1, "failed": 0, "unreachable": 0},
    ]
    markdown = drift.render_markdown(document)
    assert "## Rings" in markdown and f"| canary | 1 | 1 | 0 | 0 | 0 | {drift.md_cell(names[0])} |" in markdown
    assert markdown.index("| canary |") < markdown.index("| all |") < markdown.index("| host | status |")
    page = Collect()
    page.feed(drift.render_html(document))
    assert [attrs["data-ring"] for tag, attrs in page.tags if "data-ring" in attrs] == ["canary", "all"]
