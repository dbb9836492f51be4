"""immutable-hosts collector: the real command on loopback, sent reports the way the pull role's program sends them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from immutable_hosts import cli, collector

DATA = Path(__file__).parent / "data"
TOKEN = "0123456789abcdef0123456789abcdef"


def report_of(name: str) -> bytes:
    document = json.loads((DATA / "drift.json").read_text())
    host = next(iter(document["hosts"].values()))
    return json.dumps(dict(document, hosts={name: host})).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[dict]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    reports = tmp_path / "reports"
    reports.mkdir()
    port = free_port()
    argv = [sys.executable, "-m", "immutable_hosts.cli", "collector", "--listen", f"127.0.0.1:{port}"]
    argv += ["--dir", str(reports), "--token-file", str(token_file), "--max-bytes", "65536"]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "dir": reports, "process": process}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0  # SIGTERM ends it cleanly


def put(url: str, body: bytes, token: str | None = TOKEN, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers or {})  # noqa: S310 - loopback
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http on loopback, under test
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_report_is_stored_whole_under_the_hosts_name(running):
    body = report_of("pc-17.example.com")
    status, answer = put(running["url"] + "/reports/pc-17.example.com", body)
    assert status == 201 and "stored pc-17.example.com.json" in answer["detail"]
    stored = running["dir"] / "pc-17.example.com.json"
    assert stored.read_bytes() == body and oct(stored.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in running["dir"].iterdir()] == ["pc-17.example.com.json"]  # no temporary file left
    status, _ = put(running["url"] + "/reports/pc-17.example.com", report_of("pc-17.example.com"))
    assert status == 201  # the next report replaces it


@pytest.mark.parametrize(
    "path, token, body, status, detail",
    [
        ("/reports/pc-1", None, report_of("pc-1"), 401, "bearer token"),
        ("/reports/pc-1", "wrong-token-wrong-token", report_of("pc-1"), 401, "bearer token"),
        ("/reports/..%2Fetc", TOKEN, report_of("pc-1"), 400, "not a host name"),
        ("/reports/a/b", TOKEN, report_of("a"), 400, "not a host name"),
        ("/reports/-pc", TOKEN, report_of("-pc"), 400, "not a host name"),
        ("/reports/pc-1", TOKEN, b"not json", 400, "not JSON"),
        ("/reports/pc-1", TOKEN, json.dumps({"format": "other"}).encode(), 400, "not a drift report"),
        ("/reports/pc-1", TOKEN, report_of("pc-2"), 400, "holds that host alone"),
        ("/reports/pc-1", TOKEN, b"x" * 70000, 413, "at most 65536 bytes"),
        ("/elsewhere", TOKEN, report_of("pc-1"), 404, "/reports/NAME"),
    ],
)
def test_what_is_refused_is_refused_with_a_reason_and_nothing_is_written(running, path, token, body, status, detail):
    got, answer = put(running["url"] + path, body, token=token)
    assert got == status and detail in answer["detail"]
    assert list(running["dir"].iterdir()) == []


def test_other_methods_are_refused(running):
    request = urllib.request.Request(running["url"] + "/reports/pc-1", method="GET")  # noqa: S310 - loopback
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - http on loopback, under test
    assert caught.value.code == 405 and caught.value.headers["Allow"] == "PUT"


def test_a_body_without_a_length_is_refused(running):
    port = int(running["url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"PUT /reports/pc-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        assert conn.recv(200).startswith(b"HTTP/1.0 411")
    assert list(running["dir"].iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--listen", "8089"], "give ADDRESS:PORT"),
        (["--listen", "127.0.0.1:99999"], "give ADDRESS:PORT"),
        (["--dir", "/nonexistent/reports"], "is not a directory"),
        (["--tls-cert", "/x.pem"], "go together"),
    ],
)
def test_bad_settings_fail_with_a_message(tmp_path, capsys, args, message):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    base = {"--listen": "127.0.0.1:8089", "--dir": str(tmp_path), "--token-file": str(token_file)}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    argv = ["collector", *[item for pair in base.items() for item in pair]]
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err


def test_a_token_file_others_can_read_is_refused(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    os.chmod(token_file, 0o644)
    with pytest.raises(collector.CollectorError, match="chmod 600"):
        collector.read_token(token_file)
    token_file.chmod(0o600)
    token_file.write_text("short")
    with pytest.raises(collector.CollectorError, match="at least 16 characters"):
        collector.read_token(token_file)


def test_host_names_are_names():
    assert collector.is_host_name("silverblue-1") and collector.is_host_name("pc_7.lab.example.com")
    for bad in ("", ".", "..", "a..b", "-a", "a/b", "a b", "a" * 64, "é"):
        assert not collector.is_host_name(bad), bad
