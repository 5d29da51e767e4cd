"""The provider server's public surfaces (provider-server.yaml): JWKS, push, media, health.

An ASGI app (Starlette) served by hypercorn over HTTP/1.1 and HTTP/2. Every error is
``application/problem+json``; unknown paths and methods too.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable

import jwt
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import PROFILE_VERSION, ProviderConfig
from .faults import Faults
from .problems import ProblemError, problem, read_limited
from .storage import Storage
from .tokens import KeyStore, PushAuthError, PushVerifier, TokenIssuer

__all__ = ["ProviderServer", "RequestGuard", "REF_PATTERN"]

log = logging.getLogger("reference_impl.provider.server")

REF_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22,128}$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


#: A request body still unread when the answer starts is read and discarded up to this size
#: (hypercorn's HTTP/2 layer drops the whole connection on DATA for a finished stream).
DRAIN_LIMIT = 64 * 1024 * 1024
DRAIN_TIMEOUT = 10.0


class RequestGuard:
    """Turns any exception escaping a handler into a problem+json 500, drains unread request
    bodies before answering, and logs requests as JSON lines."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 0
        body_done = False

        async def _receive() -> dict:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.disconnect" or (
                    message["type"] == "http.request" and not message.get("more_body", False)):
                body_done = True
            return message

        async def _drain() -> None:
            drained = 0
            while not body_done and drained <= DRAIN_LIMIT:
                message = await _receive()
                drained += len(message.get("body", b""))

        async def _send(message: dict) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                if not body_done:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(_drain(), DRAIN_TIMEOUT)
            await send(message)

        try:
            await self.app(scope, _receive, _send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await problem(500, "internal", "unexpected server error")(scope, receive, send)
            status = 500
        log.info(json.dumps({"event": "http", "method": scope.get("method"),
                             "path": scope.get("path"), "status": status,
                             "http_version": scope.get("http_version")}))


async def _chunks_of(body: bytes):
    for i in range(0, len(body), _CHUNK):
        yield body[i:i + _CHUNK]


async def _file_chunks(path, start: int, stop: int):
    """Bytes ``start..stop`` of a blob file, one chunk at a time (page-cache reads of 64 KiB
    block the loop for microseconds; a thread hop per chunk would cost more than it saves)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left = stop - start
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


class ProviderServer:
    def __init__(self, config: ProviderConfig, faults: Faults, storage: Storage, keys: KeyStore,
                 issuer: TokenIssuer, push: PushVerifier,
                 on_push: Callable[[str], Awaitable[bool]]) -> None:
        self.config, self.faults, self.storage = config, faults, storage
        self.keys, self.issuer, self.push = keys, issuer, push
        self.on_push = on_push
        #: The push_global_lock fault's lock; the media_whole_blob_in_memory fault's copies.
        self._push_lock = asyncio.Lock()
        self._held: collections.deque[bytes] = collections.deque(maxlen=64)
        base = config.media_base.rstrip("/") or "/media"
        self.media_base = base
        routes = [
            Route("/.well-known/oauth/openid/jwks", self.jwks, methods=["GET"]),
            Route("/push", self.push_endpoint, methods=["POST"]),
            Route(base, self.upload, methods=["POST"]),
            Route(base + "/{ref}", self.media_get, methods=["GET", "HEAD"]),
            Route(base + "/{ref}", self.media_delete, methods=["DELETE"]),
            Route("/health", self.health, methods=["GET"]),
        ]
        self.app = Starlette(
            routes=routes,
            middleware=[Middleware(RequestGuard)],
            exception_handlers={HTTPException: self._http_error, ProblemError: self._problem},
        )

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "error")
        return problem(exc.status_code, kind, str(exc.detail or ""), headers=exc.headers)

    async def _problem(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return exc.response()

    # -- identity ------------------------------------------------------------------------
    async def jwks(self, request: Request) -> Response:
        ctype = "text/plain" if self.faults.on("jwks_text_plain") else "application/json"
        return JSONResponse(self.keys.jwks(), media_type=ctype,
                            headers={"Cache-Control": "public, max-age=60"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "profile_version": PROFILE_VERSION})

    # -- push ----------------------------------------------------------------------------
    async def push_endpoint(self, request: Request) -> Response:
        try:
            await self.push.verify(request.headers.get("authorization"))
        except PushAuthError as exc:
            log.info(json.dumps({"event": "push_rejected", "reason": str(exc)}))
            return problem(exc.status, "unauthorized" if exc.status == 401 else "forbidden",
                           str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                           if exc.status == 401 else None)
        body = await read_limited(request, self.config.max_json_body)
        ctype = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        to: object = None
        try:
            doc = json.loads(body)
            to = doc["to"] if isinstance(doc, dict) else None
        except (ValueError, UnicodeDecodeError, KeyError):
            if self.faults.on("push_500_on_malformed"):
                raise
        if self.faults.on("push_500_on_malformed"):
            to = doc["to"].strip()  # AttributeError / TypeError on a non-string: a 500
        if ctype != "application/json":
            return problem(415, "unsupported-media-type", "expected Content-Type: application/json")
        if not isinstance(to, str):
            return problem(400, "bad-request", 'body must be a JSON object with a string "to"')
        if self.faults.on("push_global_lock"):
            async with self._push_lock:
                await asyncio.sleep(0.05)  # the serialised "work" of the fault
        woke = await self.on_push(to)
        log.info(json.dumps({"event": "push", "to": to, "woke": woke}))
        if self.faults.on("push_response_body"):
            return JSONResponse({"status": "ok"})
        return Response(b"", status_code=200)

    # -- media ---------------------------------------------------------------------------
    def _user(self, request: Request) -> str:
        auth = request.headers.get("authorization") or ""
        if not auth.lower().startswith("bearer "):
            raise ProblemError(401, "unauthorized", "missing bearer user JWT",
                               headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = self.issuer.verify(auth.split(" ", 1)[1].strip())
        except (jwt.PyJWTError, ValueError) as exc:
            raise ProblemError(401, "unauthorized", f"invalid user JWT: {exc}",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
        return str(claims["sub"])

    def _new_ref(self) -> str:
        if self.faults.on("media_guessable_reference"):
            return str(self.storage.next_counter("media_ref")).zfill(22)
        return secrets.token_urlsafe(24)  # 192 bits

    async def upload(self, request: Request) -> Response:
        if self.faults.on("media_upload_without_auth"):
            try:
                owner = self._user(request)
            except ProblemError:
                owner = "anonymous"
        else:
            owner = self._user(request)
        ctype = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/octet-stream":
            raise ProblemError(415, "unsupported-media-type",
                               "expected Content-Type: application/octet-stream")
        limit = None if self.faults.on("media_no_size_limit") else self.config.max_blob_size
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            raise ProblemError(400, "bad-request", "invalid Content-Length")
        if limit is not None and declared is not None and int(declared) > limit:
            raise ProblemError(413, "too-large", f"blob larger than {limit} bytes")
        writer = self.storage.new_blob()
        try:
            async for chunk in request.stream():
                writer.write(chunk)
                if limit is not None and writer.size > limit:
                    raise ProblemError(413, "too-large", f"blob larger than {limit} bytes")
            ref = self._new_ref()
            self.storage.add_media(ref, owner, writer)
        except BaseException:
            writer.abort()
            raise
        log.info(json.dumps({"event": "media_upload", "ref": ref[:6] + "…", "size": writer.size}))
        return JSONResponse({"storage_reference": ref, "size": writer.size}, status_code=201,
                            headers={"Location": f"{self.media_base}/{ref}"})

    def _record(self, ref: str):
        if not REF_PATTERN.match(ref):
            raise ProblemError(404, "not-found", "no such storage reference")
        rec = self.storage.media(ref)
        if rec is None:
            raise ProblemError(404, "not-found", "no such storage reference")
        if rec.deleted:
            raise ProblemError(410, "gone", "deleted")
        return rec

    async def media_get(self, request: Request) -> Response:
        # Read the (empty) request body first: a streamed answer listens for the disconnect on
        # the same channel, so RequestGuard must not be left to drain it concurrently.
        await read_limited(request, self.config.max_json_body)
        if self.faults.on("media_get_requires_bearer") and not (
                request.headers.get("authorization") or "").lower().startswith("bearer "):
            raise ProblemError(401, "unauthorized", "missing bearer token")  # MED-018 violated
        rec = self._record(request.path_params["ref"])
        path = self.storage.blob_path(rec.ref)
        try:
            size = path.stat().st_size
            data = path.read_bytes() if self.faults.on("media_whole_blob_in_memory") else None
        except FileNotFoundError:
            raise ProblemError(410, "gone", "deleted") from None
        if data is not None:
            size = len(data)
        ctype = "image/jpeg" if self.faults.on("media_wrong_content_type") else "application/octet-stream"
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-transform"}
        if self.faults.on("media_sniffed_gzip"):  # a blob that happens to start like gzip
            with path.open("rb") as f:
                if f.read(2) == b"\x1f\x8b":
                    headers["Content-Encoding"] = "gzip"
        status, start, stop = 200, 0, size
        rng = request.headers.get("range")
        if rng is not None:
            m = _RANGE.match(rng.strip().replace(" ", ""))
            if m and (m.group(1) or m.group(2)):
                first, last = m.group(1), m.group(2)
                if first:
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                    ok = start < size and (not last or int(last) >= start)
                else:
                    n = int(last)
                    start, end = max(size - n, 0), size - 1
                    ok = n > 0 and size > 0
                if not ok:
                    return problem(416, "range-not-satisfiable", "unsatisfiable range",
                                   headers={"Content-Range": f"bytes */{size}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                stop = end + 2 if self.faults.on("media_range_off_by_one") else end + 1
        stop = min(stop, size)
        head = request.method == "HEAD"
        no_length = self.faults.on("media_no_content_length")
        if not no_length:
            headers["Content-Length"] = str(stop - start)
        if head:
            return Response(b"", status_code=status, media_type=ctype, headers=headers)
        if data is not None:  # the media_whole_blob_in_memory fault: one copy per request
            body = data[start:stop]
            self._held.append(body)
            if not no_length:
                return Response(body, status_code=status, media_type=ctype, headers=headers)
            chunks = _chunks_of(body)
        else:  # LOAD-007: streamed from storage, one chunk in memory per answer
            chunks = _file_chunks(path, start, stop)
        return StreamingResponse(chunks, status_code=status, media_type=ctype, headers=headers)

    async def media_delete(self, request: Request) -> Response:
        user = self._user(request)
        rec = self._record(request.path_params["ref"])
        if rec.owner != user and not self.faults.on("media_delete_any_user"):
            raise ProblemError(403, "forbidden", "only the uploader may delete a blob")
        self.storage.delete_media(rec.ref)
        return Response(status_code=204)

    def delete_media_of(self, owner: str) -> int:
        """CON-009: make every blob a user uploaded unavailable (on opt-out)."""
        refs = self.storage.media_of(owner)
        for ref in refs:
            self.storage.delete_media(ref)
        return len(refs)
