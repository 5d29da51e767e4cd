"""The simulator's one ASGI app: enlistment, G's JWKS, G-hosted media and the chat WebSocket.

A plain ASGI callable (no framework): four routes, and full control over how much of a
request body is read before it is refused. It reads the state core (settings, log, G's keys,
the media store) and hands enlistment bodies and WebSockets to the edges it is given, so it
imports neither the edges' logic nor the simulator that wires it.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from .observe import SimulatedServerError
from .state import GatekeeperState

__all__ = ["make_app"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JWKS_PATH = "/.well-known/oauth/openid/jwks"
#: ``(body, content_type, peer)`` -> G's JSON answer (:func:`.enlist_handler.enlist`).
Enlist = Callable[[bytes, str, str], Awaitable[dict[str, str]]]
#: Runs one chat WebSocket to its end (:meth:`.chat.ChatSession.run`).
Chat = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _respond(send: Send, status: int, body: bytes = b"", *,
                   content_type: str | None = "application/json", length: bool = True,
                   head: bool = False, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = list(extra or [])
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    if length:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _json(send: Send, status: int, obj: Any) -> None:
    await _respond(send, status, json.dumps(obj).encode())


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it exceeds ``limit`` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not msg.get("more_body"):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers", []):
        if k.lower() == name:
            return v.decode("latin-1")
    return ""


def make_app(gk: GatekeeperState, *, enlist: Enlist,
             chat: Chat) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope.get("path", "")
        if kind == "websocket":
            if path != "/chat":
                await send({"type": "websocket.close", "code": 1008})
                return
            await chat(scope, receive, send)
            return
        method = scope.get("method", "GET")
        peer = "{}:{}".format(*(scope.get("client") or ("?", "?")))
        if path == "/3p/interop_reg":
            if method != "POST":
                await _json(send, 405, {"error": "method not allowed"})
                return
            body = await _read_body(receive, gk.settings.max_enlist_body)
            if body is None:
                gk.log.append("enlist_failed", None, reason="too_large", requirement="ENL-009",
                              detail=f"body above {gk.settings.max_enlist_body} bytes", peer=peer)
                await _json(send, 413, {"status": "fail", "reason": "malformed"})
                return
            try:
                result = await enlist(body, _header(scope, b"content-type"), peer)
            except SimulatedServerError:
                await _respond(send, 500, b"", content_type=None)
                return
            await _json(send, 200, result)
            return
        if path == JWKS_PATH and method in ("GET", "HEAD"):
            await _respond(send, 200, json.dumps(gk.keys.jwks()).encode(), head=method == "HEAD",
                           extra=[(b"cache-control", b"max-age=60")])
            return
        if path.startswith("/media/") and method in ("GET", "HEAD"):
            direct_path = path[len("/media"):]
            hosted = gk.media.get(direct_path)
            gk.log.append("media_served", None, direct_path=direct_path, method=method,
                          found=hosted is not None, tamper=hosted.tamper if hosted else None,
                          http_version=scope.get("http_version"), peer=peer)
            if hosted is None:
                await _respond(send, 404, b"", content_type=None)
                return
            await _respond(send, 200, gk.media.served_bytes(hosted), content_type=hosted.content_type,
                           length=hosted.send_length, head=method == "HEAD")
            return
        await _respond(send, 404, b"", content_type=None)

    return app
