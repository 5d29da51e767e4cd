"""Total deadlines of :class:`conformance.bounded_http.BoundedHttp` against real loopback peers
that misbehave at every phase (issue 13 §1): each exchange ends within its deadline with an error
saying how far it got, never a response a check could take for a PASS.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from conformance.bounded_http import BoundedHttp
from reference_impl.provider.tls import ensure_certificates, server_context

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
DEADLINE = 2.0
SLACK = 5.0  # scheduling on a shared 2-core machine; the point is "bounded", not "precise"


async def _read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def hang(reader, writer) -> None:
    await asyncio.sleep(3600)


async def trickle_headers(reader, writer) -> None:
    await _read_request(reader)
    for b in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 10_000:
        writer.write(bytes([b]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def trickle_body(reader, writer) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(100_000):
        writer.write(b"[")
        await writer.drain()
        await asyncio.sleep(0.5)


async def endless_body(reader, writer) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        while True:  # small chunks, slowly enough never to reach the cap within the deadline
            writer.write(b"10\r\n" + b"[" * 16 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
    except (ConnectionError, OSError):
        pass


async def huge_body(reader, writer) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
    try:
        while True:
            writer.write(b"[" * 65536)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def reset(reader, writer) -> None:
    await _read_request(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def garbage(reader, writer) -> None:
    await _read_request(reader)
    writer.write(b"\x00\xffNOT HTTP AT ALL\r\n\r\n" * 50)
    await writer.drain()
    writer.close()


async def redirect_away(reader, writer) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 302 Found\r\nLocation: https://elsewhere.invalid/jwks\r\n"
                 b"Content-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


class Server:
    def __init__(self, handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        async def main() -> None:
            server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_ctx,
                                                ssl_handshake_timeout=3600 if ssl_ctx else None)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            await server.serve_forever()

        def run() -> None:
            try:
                self.loop.run_until_complete(main())
            except asyncio.CancelledError:
                pass

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(self.loop)])
        self.thread.join(10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(handler, ssl_ctx))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _timed(http: BoundedHttp, url: str):
    t0 = time.monotonic()
    res = http.request("GET", url)
    return res, time.monotonic() - t0


@pytest.mark.parametrize("handler,phase", [(hang, "connect"), (trickle_headers, "headers"),
                                           (trickle_body, "body"), (endless_body, "body")],
                         ids=["hang", "trickle-headers", "trickle-body", "endless-body"])
def test_a_slow_peer_hits_the_total_deadline_with_its_progress(serve, handler, phase):
    srv = serve(handler)
    http = BoundedHttp(timeout=DEADLINE * 3, deadline=DEADLINE)  # each read alone would wait longer
    res, wall = _timed(http, f"http://127.0.0.1:{srv.port}/jwks")
    http.close()
    assert not res.ok and res.deadline_hit, res.describe()
    assert res.status == 0 and res.body == b""
    assert res.phase == phase, res.describe()
    if phase != "connect":
        assert res.bytes_received > 0
    assert DEADLINE - 0.1 <= wall <= DEADLINE + SLACK, wall
    assert "deadline exceeded" in res.describe() and f"'{phase}'" in res.describe()


def test_a_huge_body_is_cut_at_the_cap_and_flagged(serve):
    srv = serve(huge_body)
    http = BoundedHttp(deadline=DEADLINE * 5, max_body=1 << 20)
    res, wall = _timed(http, f"http://127.0.0.1:{srv.port}/jwks")
    http.close()
    assert res.ok and res.truncated and len(res.body) == 1 << 20
    assert wall <= DEADLINE * 5 + SLACK


@pytest.mark.parametrize("handler", [reset, garbage], ids=["reset", "garbage"])
def test_reset_and_garbage_are_errors_not_responses(serve, handler):
    srv = serve(handler)
    http = BoundedHttp(deadline=DEADLINE)
    res, wall = _timed(http, f"http://127.0.0.1:{srv.port}/jwks")
    http.close()
    assert not res.ok and not res.deadline_hit and res.status == 0, res.describe()
    assert wall <= DEADLINE + SLACK


def test_a_redirect_away_is_not_followed(serve):
    srv = serve(redirect_away)
    http = BoundedHttp(deadline=DEADLINE)
    res, _ = _timed(http, f"http://127.0.0.1:{srv.port}/jwks")
    http.close()
    assert res.ok and res.status == 302 and res.url.startswith("http://127.0.0.1")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return ensure_certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"])


def test_an_untrusted_certificate_is_refused(serve, tls_files):
    srv = serve(garbage, server_context(tls_files, http2=False, cbc_ciphers=False))
    http = BoundedHttp(verify=True, deadline=DEADLINE)  # the system store does not know this CA
    res, wall = _timed(http, f"https://127.0.0.1:{srv.port}/jwks")
    http.close()
    assert not res.ok and "CERTIFICATE_VERIFY_FAILED" in res.error, res.describe()
    assert wall <= DEADLINE + SLACK


def test_a_stalled_tls_handshake_hits_the_deadline(serve):
    srv = serve(hang)  # accepts TCP, never answers the ClientHello
    http = BoundedHttp(timeout=DEADLINE * 3, deadline=DEADLINE)
    res, wall = _timed(http, f"https://127.0.0.1:{srv.port}/jwks")
    http.close()
    assert not res.ok and res.deadline_hit, res.describe()
    assert wall <= DEADLINE + SLACK
