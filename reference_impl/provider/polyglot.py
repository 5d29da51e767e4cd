"""Fault ``cleartext_on_tls_port``: one port that speaks both TLS and plain HTTP.

The bug some deployments ship (a protocol-sniffing listener, "httpolyglot"-style): the first
byte of a connection decides; a TLS record (``0x16``) goes to the TLS server, anything else to
the same app without TLS, so JWKS, push and media are also served in cleartext (TRN-005). The
listener splices bytes only: TLS stays end to end between the peer and the TLS backend.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket

__all__ = ["serve_polyglot"]

#: The content type of a TLS handshake record: every ClientHello starts with it.
TLS_HANDSHAKE = 0x16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  tls_port: int, plain_port: int) -> None:
    try:
        first = await reader.read(65536)
        if not first:
            return
        port = tls_port if first[0] == TLS_HANDSHAKE else plain_port
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionError, OSError):
        writer.close()
        return
    try:
        b_writer.write(first)
        await asyncio.gather(_pipe(reader, b_writer), _pipe(b_reader, writer))
    finally:
        for w in (b_writer, writer):
            with contextlib.suppress(Exception):
                w.close()


async def serve_polyglot(sock: socket.socket, tls_port: int, plain_port: int,
                         shutdown: asyncio.Event) -> None:
    """Accept on ``sock`` until ``shutdown`` is set; each connection goes to the TLS or the
    cleartext backend on loopback by its first byte."""
    conns: set[asyncio.Task] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conns.add(task)
        try:
            await _splice(reader, writer, tls_port, plain_port)
        finally:
            conns.discard(task)

    server = await asyncio.start_server(on_connect, sock=sock)
    try:
        await shutdown.wait()
    finally:
        server.close()
        for t in list(conns):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
