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
SERVER_REQUIREMENTS = ["ID-001", "ID-002", "ID-003", "ID-004", "TRN-004", "MED-018", "MED-012"]


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


def _planted_secrets() -> tuple[bytes, list[bytes]]:
    """A body made of secrets a careless provider might serve: a PEM private key cut off before
    its END line, a raw 32-byte key in hex and the same in base64. Returns (body, needles)."""
    import base64
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    cut = pem[: pem.index(b"-----END")]
    raw = os.urandom(32)
    hexkey, b64key = raw.hex().encode(), base64.b64encode(raw)
    body = cut + b"\n" + hexkey + b"\n" + b64key + b"\n"
    pem_line = cut.splitlines()[1]  # the first line of key material
    return body, [pem_line, pem_line[:24], hexkey, hexkey[:24], b64key, b64key[:24]]


def test_provider_secrets_never_reach_an_output(tmp_path: Path):
    """A provider whose every answer is its own private key material: the identity checks FAIL,
    and no output — report.json, junit.xml, report.html, every file inside evidence.zip, the
    terminal output with -vv — holds any of it (issue 13 §2)."""
    import zipfile

    body, needles = _planted_secrets()

    async def leak(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    BEHAVIOURS["leak"] = leak
    try:
        request = type("R", (), {"param": "leak"})()
        gen = broken_server.__wrapped__(request, tmp_path)  # type: ignore[attr-defined]
        target = next(gen)
        try:
            out = tmp_path / "reports"
            cmd = [sys.executable, "-m", "pytest", "--target", target, "--insecure", "-vv",
                   "-p", "no:cacheprovider", "--report-dir", str(out),
                   "--req", "ID-001", "--req", "ID-002", "--req", "ID-003", "--req", "ID-004",
                   "--area-timeout", "identity=3"]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=300)
        finally:
            next(gen, None)
    finally:
        BEHAVIOURS.pop("leak", None)
    report = json.loads((out / "report.json").read_text())
    assert {r["id"]: r["verdict"] for r in report["requirements"]}["ID-001"] == "FAIL"
    outputs: dict[str, bytes] = {"stdout": proc.stdout, "stderr": proc.stderr}
    for f in out.rglob("*"):
        if f.is_file():
            outputs[str(f.relative_to(out))] = f.read_bytes()
    with zipfile.ZipFile(out / "evidence.zip") as z:
        for name in z.namelist():
            outputs["evidence.zip:" + name] = z.read(name)
    found = [(where, n[:12]) for where, data in outputs.items() for n in needles if n in data]
    assert not found, f"planted secrets found in outputs: {found}"
    assert len(outputs) > 6


async def _silent_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)  # plain TCP: accepts, never speaks TLS or HTTP


async def _trickle_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:  # one byte per 0.5 s: every per-read timeout is met, the exchange never ends
            writer.write(b"\x16")
            await writer.drain()
            await asyncio.sleep(0.5)
    except (ConnectionError, OSError):
        pass


TRANSPORT_PROBES = ["TRN-001", "TRN-002", "TRN-003", "TRN-005"]


@pytest.mark.parametrize("behaviour", [_silent_tcp, _trickle_tcp], ids=["silent", "trickle"])
def test_silent_or_trickling_peer_fails_the_tls_probes_within_the_deadline(behaviour, tmp_path: Path):
    """The raw-socket probes (TLS handshakes, the cleartext request) have a total deadline: a
    peer that never answers, or answers one byte at a time inside every read timeout, ends each
    probe by the profile's ``deadlines.exchange`` and passes nothing (a silence is not a refusal)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, int] = {}

    async def main() -> None:
        server = await asyncio.start_server(behaviour, "127.0.0.1", 0)
        holder["port"] = server.sockets[0].getsockname()[1]
        started.set()
        await server.serve_forever()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    profile = tmp_path / "transport.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "transport-only", "profile_version": "1.0.0", "extends": "core",
        "include": {"profiles": [], "requirements": TRANSPORT_PROBES},
        "parameters": {"deadlines": {"exchange": 2}, "timeouts": {"transport": 1.5}}}))
    out = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "--target", f"https://127.0.0.1:{holder['port']}",
           "--insecure", "-q", "-p", "no:cacheprovider", "--profile", str(profile),
           "--report-dir", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
        thread.join(10)
    wall = time.perf_counter() - t0
    assert proc.returncode == 1, proc.stdout[-3000:]
    report = json.loads((out / "report.json").read_text())
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    assert set(verdicts) == set(TRANSPORT_PROBES)
    # FAIL for a MUST, WARN for a SHOULD (TRN-002), ERROR where nothing could be judged.
    assert "PASS" not in verdicts.values() and verdicts["TRN-001"] == "FAIL", verdicts
    # 6 handshakes and one cleartext request, each at most 2 s, plus the suite's start-up.
    assert wall < 60, f"the run took {wall:.0f} s: a probe is not bounded by its deadline"
