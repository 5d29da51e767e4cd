"""The suite against small, deliberately broken servers (issue 6 §4): a provider that hangs,
closes connections, answers garbage or floods must get FAIL or ERROR with evidence within the
area timeouts — never a hang of the kit, never a PASS — and the run must go on to the end.

Each server is a real TLS listener on loopback; the suite runs in a subprocess exactly as a
provider would run it (``--target``, ``--insecure``, no harness), restricted to the
provider-server requirements that need no harness.
"""
from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reference_impl.provider.tls import ensure_certificates, server_context

ROOT = Path(__file__).resolve().parents[2]
SERVER_REQUIREMENTS = ["ID-001", "ID-002", "ID-003", "ID-004", "TRN-004", "MED-009", "MED-012"]


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)  # read nothing, answer nothing


async def _close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"\x00\xffNOT HTTP AT ALL\r\n\r\n" * 50)
    await writer.drain()
    writer.close()


async def _flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"1000\r\n" + b"[" * 4096 + b"\r\n"
    try:
        for _ in range(200_000):  # ~800 MiB if nobody stops reading; the kit must stop first
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    writer.close()


BEHAVIOURS = {"hang": _hang, "close": _close, "garbage": _garbage, "flood": _flood}


@pytest.fixture
def broken_server(request, tmp_path: Path) -> Iterator[str]:
    behaviour = BEHAVIOURS[request.param]
    files = ensure_certificates(tmp_path / "tls", ["127.0.0.1"])
    ctx = server_context(files, http2=False, cbc_ciphers=False)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def main() -> None:
        server = await asyncio.start_server(behaviour, "127.0.0.1", 0, ssl=ctx)
        holder["port"] = server.sockets[0].getsockname()[1]
        holder["server"] = server
        started.set()
        await server.serve_forever()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass  # stopped by the fixture's teardown

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"https://127.0.0.1:{holder['port']}"
    loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
    thread.join(10)


@pytest.mark.parametrize("broken_server", sorted(BEHAVIOURS), indirect=True)
def test_broken_provider_gets_fail_or_error_and_the_run_completes(broken_server: str, tmp_path: Path):
    profile = tmp_path / "server.yaml"
    profile.write_text(yaml.safe_dump({"name": "server-only", "profile_version": "1.0.0",
                                       "extends": "core", "include": {"profiles": [],
                                       "requirements": SERVER_REQUIREMENTS}}))
    out = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "--target", broken_server, "--insecure", "-q",
           "-p", "no:cacheprovider", "--profile", str(profile), "--report-dir", str(out),
           "--area-timeout", "identity=3", "--area-timeout", "transport=3",
           "--area-timeout", "media=3"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    assert proc.returncode == 1, proc.stdout[-3000:]  # failures found, not a crash (2/3/4)
    report = json.loads((out / "report.json").read_text())
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    assert set(verdicts) == set(SERVER_REQUIREMENTS)
    assert all(v in ("FAIL", "ERROR", "NOT_TESTED") for v in verdicts.values()), verdicts
    assert "PASS" not in verdicts.values() and "WARN" not in verdicts.values(), verdicts
    for r in report["requirements"]:
        assert r["message"], f"{r['id']} has no failure message"
    assert report["result"] == "FAIL"
    assert wall < 200, f"the run took {wall:.0f} s: a wait is not bounded"


def test_dead_target_passes_nothing(tmp_path: Path):
    """A closed port (nothing listens) must not PASS a single requirement of ``core``: a refused
    connection is not an exchange (TRN-001's old-version probe and TRN-005's cleartext probe used
    to count it as one and passed against a dead target)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "--target", f"https://127.0.0.1:{port}", "--insecure",
           "-q", "-p", "no:cacheprovider", "--profile", "core", "--report-dir", str(out),
           "--area-timeout", "identity=3", "--area-timeout", "transport=3",
           "--area-timeout", "media=3"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:]
    report = json.loads((out / "report.json").read_text())
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    passed = sorted(i for i, v in verdicts.items() if v in ("PASS", "WARN", "NOT_APPLICABLE"))
    assert not passed, f"passed against a dead target: {passed}"
    for tid in ("TRN-001", "TRN-005"):
        assert verdicts[tid] in ("FAIL", "ERROR"), (tid, verdicts[tid])
    assert report["result"] == "FAIL"
