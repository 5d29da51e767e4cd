"""The harness API (docs/spec/openapi/harness.yaml) around the provider's clients.

It only drives the clients (user actions) and reports what they showed their users; it
never bypasses their code paths. Request bodies are validated with JSON Schema (the schemas
below mirror the OpenAPI components; a test keeps them equal); every error is
``application/problem+json``.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import jsonschema
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .client import ClientError
from .config import HARNESS_VERSION, PROFILE_VERSION, GatekeeperSettings
from .problems import ProblemError, problem, read_json
from .server import RequestGuard

if TYPE_CHECKING:
    from .app import ProviderApp

__all__ = ["build_harness", "SCHEMAS"]

_STR = {"type": "string"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "GatekeeperConfig": {
        "type": "object",
        "required": ["enlist_url", "chat_url", "noise_static_key", "media_host", "ca_certificates"],
        "properties": {
            "enlist_url": {"type": "string", "format": "uri"},
            "chat_url": {"type": "string", "format": "uri"},
            "noise_static_key": _STR,
            "media_host": {"type": "string", "format": "uri"},
            "ca_certificates": _STR,
            "jwks_url": {"type": "string", "format": "uri"},
            "issuer": _STR,
            "audience": _STR,
            "wire": {"type": "string", "enum": ["open", "wa"]},
            "wa_root_key": _STR,
        },
    },
    "CreateUser": {"type": "object", "properties": {"user_visible_id": _STR}},
    "Disconnect": {"type": "object", "properties": {"wake_on_push": {"type": "boolean", "default": True}}},
    "SendRequest": {
        "type": "object",
        "required": ["to", "kind"],
        "properties": {
            "to": _STR, "kind": {"enum": ["text", "reply", "media", "reaction"]}, "text": _STR,
            "quoted_message_id": _STR, "quoted_sender": _STR, "target_message_id": _STR,
            "target_sender": _STR, "emoji": _STR, "media": {"$ref": "#/$defs/MediaPlain"},
        },
        "allOf": [
            {"if": {"properties": {"kind": {"const": "text"}}}, "then": {"required": ["text"]}},
            {"if": {"properties": {"kind": {"const": "reply"}}},
             "then": {"required": ["text", "quoted_message_id", "quoted_sender"]}},
            {"if": {"properties": {"kind": {"const": "media"}}}, "then": {"required": ["media"]}},
            {"if": {"properties": {"kind": {"const": "reaction"}}},
             "then": {"required": ["target_message_id", "target_sender", "emoji"]}},
        ],
        "$defs": {"MediaPlain": {
            "type": "object",
            "required": ["type", "mimetype", "data"],
            "properties": {
                "type": {"enum": ["image", "video", "audio", "document", "sticker"]},
                "mimetype": _STR, "data": {"type": "string", "contentEncoding": "base64"},
                "caption": _STR, "file_name": _STR,
                "width": {"type": "integer", "minimum": 0},
                "height": {"type": "integer", "minimum": 0},
                "seconds": {"type": "integer", "minimum": 0},
                "ptt": {"type": "boolean"},
            },
        }},
    },
    "Read": {
        "type": "object", "required": ["peer", "message_ids"],
        "properties": {"peer": _STR, "message_ids": {"type": "array", "minItems": 1, "items": _STR}},
    },
    "Peer": {"type": "object", "required": ["peer"], "properties": {"peer": _STR}},
    "Reachability": {"type": "object", "required": ["recipient"], "properties": {"recipient": _STR}},
    "Typing": {
        "type": "object", "required": ["peer", "state"],
        "properties": {"peer": _STR, "state": {"enum": ["composing", "paused"]}},
    },
    "ClockAdvance": {
        "type": "object", "required": ["advance_s"],
        "properties": {"advance_s": {"type": "number", "minimum": 0, "maximum": 31_536_000}},
    },
}
_VALIDATORS = {name: jsonschema.Draft202012Validator(
    schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for name, schema in SCHEMAS.items()}


def _validate(name: str, doc: Any) -> Any:
    errors = sorted(_VALIDATORS[name].iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "body"
        raise ProblemError(400, "bad-request", f"{where}: {e.message}")
    return doc


def _b64url(text: str, name: str = "noise_static_key") -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ProblemError(400, "bad-request", f"{name} is not base64url") from None
    if len(raw) != 32:
        raise ProblemError(400, "bad-request", f"{name} must decode to 32 bytes")
    return raw


def build_harness(app: "ProviderApp") -> Starlette:
    limit = app.config.max_json_body

    async def body(request: Request, name: str, *, required: bool = True, big: bool = False) -> Any:
        doc = await read_json(request, app.config.max_harness_body if big else limit,
                              required=required)
        if doc is None:
            return {}
        return _validate(name, doc)

    def client(request: Request):
        c = app.clients.get(request.path_params["user"])
        if c is None:
            raise ProblemError(404, "unknown-user", f"no user {request.path_params['user']!r}")
        return c

    async def info(request: Request) -> Response:
        return JSONResponse({"harness_version": HARNESS_VERSION, "profile_version": PROFILE_VERSION,
                             "profiles": ["core", "media", "groups"],
                             "client": "reference-provider 0.1.0"})

    async def reset(request: Request) -> Response:
        doc = await body(request, "GatekeeperConfig")
        gk = GatekeeperSettings(
            enlist_url=doc["enlist_url"], chat_url=doc["chat_url"],
            noise_static_key=_b64url(doc["noise_static_key"]), media_host=doc["media_host"],
            ca_certificates=doc["ca_certificates"], jwks_url=doc.get("jwks_url", ""),
            issuer=doc.get("issuer", ""), audience=doc.get("audience", ""),
            wire=doc.get("wire", "open"),
            wa_root_key=_b64url(doc["wa_root_key"], "wa_root_key") if doc.get("wa_root_key") else None)
        await app.reset(gk)
        return Response(status_code=204)

    async def create_user(request: Request) -> Response:
        doc = await body(request, "CreateUser", required=False)
        handle, visible = await app.create_user(doc.get("user_visible_id"))
        return JSONResponse({"user": handle, "user_visible_id": visible}, status_code=201)

    async def enlist(request: Request) -> Response:
        login = await client(request).enlist()
        return JSONResponse({"login": login})

    async def connect(request: Request) -> Response:
        await client(request).connect()
        return Response(status_code=204)

    async def disconnect(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "Disconnect", required=False)
        await c.disconnect(doc.get("wake_on_push", True))
        return Response(status_code=204)

    async def send(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "SendRequest", big=True)
        mid = await c.send(doc)
        return JSONResponse({"message_id": mid}, status_code=202)

    async def read(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "Read")
        await c.mark_read(doc["peer"], doc["message_ids"])
        return Response(status_code=204)

    async def block(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "Peer")
        c.block(doc["peer"], True)
        return Response(status_code=204)

    async def unblock(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "Peer")
        c.block(doc["peer"], False)
        return Response(status_code=204)

    async def ping(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "Reachability")
        await c.reachability_ping(doc["recipient"])
        return Response(status_code=202)

    async def rotate(request: Request) -> Response:
        await client(request).rotate_signed_pre_key()
        return Response(status_code=204)

    async def clock(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "ClockAdvance")
        return JSONResponse({"offset_s": c.advance_clock(float(doc["advance_s"]))})

    async def opt_out(request: Request) -> Response:
        await client(request).opt_out()
        return Response(status_code=204)

    async def typing(request: Request) -> Response:
        c = client(request)
        doc = await body(request, "Typing")
        c.set_typing(doc["peer"], doc["state"])
        return Response(status_code=202)

    async def delete_account(request: Request) -> Response:
        await client(request).delete_account()
        return Response(status_code=204)

    async def inbox(request: Request) -> Response:
        c = client(request)
        return JSONResponse({"items": c.inbox(request.query_params.get("peer"))})

    async def events(request: Request) -> Response:
        c = client(request)
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            raise ProblemError(400, "bad-request", "after must be a non-negative integer")
        return JSONResponse({"events": app.storage.events(c.handle, int(after))})

    async def on_client_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClientError)
        return problem(exc.status, exc.kind, exc.detail, reason=exc.reason)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return exc.response()

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "error")
        return problem(exc.status_code, kind, str(exc.detail or ""), headers=exc.headers)

    u = "/users/{user}"
    routes = [
        Route("/info", info, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/users", create_user, methods=["POST"]),
        Route(u + "/enlist", enlist, methods=["POST"]),
        Route(u + "/connect", connect, methods=["POST"]),
        Route(u + "/disconnect", disconnect, methods=["POST"]),
        Route(u + "/messages", send, methods=["POST"]),
        Route(u + "/read", read, methods=["POST"]),
        Route(u + "/block", block, methods=["POST"]),
        Route(u + "/unblock", unblock, methods=["POST"]),
        Route(u + "/reachability-ping", ping, methods=["POST"]),
        Route(u + "/rotate-signed-prekey", rotate, methods=["POST"]),
        Route(u + "/clock", clock, methods=["POST"]),
        Route(u + "/opt-out", opt_out, methods=["POST"]),
        Route(u + "/typing", typing, methods=["POST"]),
        Route(u + "/delete-account", delete_account, methods=["POST"]),
        Route(u + "/inbox", inbox, methods=["GET"]),
        Route(u + "/events", events, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(RequestGuard)], exception_handlers={
        ClientError: on_client_error, ProblemError: on_problem, HTTPException: on_http})
