"""immutable-hosts drift merge: per-host reports (pull mode, several controllers) merged into one fleet report."""

from __future__ import annotations

import copy
import functools
import http.server
import json
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from immutable_hosts import cli, drift, fleet

DATA = Path(__file__).parent / "data"


def per_host_reports(directory: Path, generated: str = "2026-12-01T10:00:00Z") -> dict:
    """The fixture fleet report split as pull mode writes it: one document per host."""
    document = json.loads((DATA / "drift.json").read_text())
    directory.mkdir(parents=True, exist_ok=True)
    for name, host in document["hosts"].items():
        host = dict(host, groups=["silverblue"] if name.startswith("silverblue") else ["others"])
        one = dict(document, generated=generated, hosts={name: host})
        (directory / f"{name}.json").write_text(json.dumps(one))
    return document


def merge(tmp_path: Path, *sources: str, capsys=None) -> tuple[int, dict]:
    out = tmp_path / "report"
    code = cli.main(["drift", "merge", *sources, "--report-dir", str(out)])
    merged = json.loads((out / "drift.json").read_text()) if (out / "drift.json").exists() else {}
    return code, merged


def test_per_host_reports_merge_into_the_fleet_report(tmp_path):
    original = per_host_reports(tmp_path / "reports")
    code, merged = merge(tmp_path, str(tmp_path / "reports"))
    assert code == drift.EXIT_ERROR  # bootc-1 is unreachable, as in the fleet report the hosts came from
    assert merged["summary"] == original["summary"] and merged["merged_from"] == 4
    assert sorted(merged["hosts"]) == sorted(original["hosts"])
    page = (tmp_path / "report" / "drift.html").read_text()
    assert '<tr data-group="silverblue">' in page and 'data-resource-row="layered packages"' in page
    markdown = (tmp_path / "report" / "drift.md").read_text()
    assert "| silverblue | 2 | 1 | 1 | 0 | 0 |" in markdown


def test_the_newest_report_of_a_host_wins(tmp_path):
    per_host_reports(tmp_path / "old", "2026-12-01T10:00:00Z")
    newer = json.loads((tmp_path / "old" / "silverblue-1.json").read_text())
    newer["generated"] = "2026-12-02T10:00:00Z"
    host = newer["hosts"]["silverblue-1"]
    host.update(status="in_sync", changes=[])
    (tmp_path / "new.json").write_text(json.dumps(newer))
    _code, merged = merge(tmp_path, str(tmp_path / "new.json"), str(tmp_path / "old"))
    assert merged["hosts"]["silverblue-1"]["status"] == "in_sync"
    assert merged["hosts"]["silverblue-1"]["report"] == "2026-12-02T10:00:00Z"
    assert merged["summary"]["in_sync"] == 2


def test_a_report_from_a_url(tmp_path):
    per_host_reports(tmp_path / "served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/silverblue-2.json"
        code, merged = merge(tmp_path, url)
    finally:
        server.shutdown()
    assert code == drift.EXIT_IN_SYNC and list(merged["hosts"]) == ["silverblue-2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "is not JSON"),
        (json.dumps({"format": "other/1", "hosts": {}}), "is not an immutable.hosts.drift/1 document"),
        (json.dumps({"format": drift.FORMAT, "hosts": {"web": {"changes": []}}}), "has no status"),
        (None, "no such file, directory or http(s) URL"),
    ],
)
def test_bad_sources_fail_with_a_message_and_write_nothing(tmp_path, capsys, content, message):
    source = tmp_path / "report.json"
    if content is not None:
        source.write_text(content)
    code, merged = merge(tmp_path, str(source))
    assert code == drift.EXIT_ERROR and merged == {}
    assert message in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def synthetic_fleet(count: int) -> dict:
    """``count`` hosts in three groups: one in a hundred unreachable, of the others one in ten drifted."""
    template = json.loads((DATA / "drift.json").read_text())
    drifted = template["hosts"]["silverblue-1"]
    hosts = {}
    for index in range(count):
        name = f"ws-{index:05d}"
        if index % 100 == 0:
            host = copy.deepcopy(template["hosts"]["bootc-1"])
        elif index % 10 == 0:
            host = copy.deepcopy(drifted)
        else:
            host = {"status": "in_sync", "changes": [], "failures": [], "unreachable": None, "unchecked": [], "stats": {}}
        host["groups"] = [("laptops", "desktops", "labs")[index % 3]]
        hosts[name] = host
    return dict(template, hosts=hosts, summary=fleet.summarize(hosts, []))


def test_a_large_fleet_lists_the_hosts_that_need_a_look_and_sums_up_the_rest():
    document = synthetic_fleet(1000)
    assert document["summary"] == {"hosts": 1000, "in_sync": 900, "drifted": 90, "failed": 0, "unreachable": 10, "changes": 180}
    page = drift.render_html(document)
    parsed = Tags()
    parsed.feed(page)
    rows = [a["data-host"] for t, a in parsed.tags if t == "tr" and "data-host" in a]
    assert len(rows) == 100 and "ws-00001" not in rows and "ws-00010" in rows and "ws-00100" in rows
    assert "900 hosts in sync are not listed" in page
    groups = {a["data-group"] for t, a in parsed.tags if t == "tr" and "data-group" in a}
    assert groups == {"laptops", "desktops", "labs"}
    assert "and 80 more" in page  # a resource drifted on 90 hosts lists ten of them
    assert len(page) < 2_000_000
    markdown = drift.render_markdown(document)
    assert "900 hosts in sync are not listed" in markdown and "ws-00001 " not in markdown
