"""The harness API (docs/spec/openapi/harness.yaml) around the naive client: plain HTTP on a
private address, every action goes through :class:`~.client.Client`."""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

from .client import Client, ConnectFailed

PROBLEM = "https://interop-conformance.invalid/problems/"


def problem(status: int, kind: str, detail: str = "", reason: str | None = None) -> Response:
    body: dict[str, Any] = {"type": PROBLEM + kind, "title": kind.replace("-", " "), "status": status,
                            "detail": detail or kind}
    if reason is not None:
        body["reason"] = reason
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise TypeError("not an object")
    return doc


class Harness:
    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.users: dict[str, Client] = {}

    def user(self, request: Request) -> Client | None:
        return self.users.get(request.path_params["user"])

    async def info(self, request: Request) -> Response:
        return JSONResponse({"harness_version": "1.0.0", "profile_version": "1.0.0", "profiles": ["core"],
                             "client": "naive-provider 0.1"})

    async def reset(self, request: Request) -> Response:
        try:
            cfg = await _json(request)
        except (ValueError, TypeError):
            return problem(400, "bad-request", "body is not a JSON object")
        missing = [k for k in ("enlist_url", "chat_url", "noise_static_key", "media_host", "ca_certificates")
                   if not isinstance(cfg.get(k), str)]
        if missing:
            return problem(400, "bad-request", f"missing {missing}")
        for c in self.users.values():
            await c.stop()
        self.users.clear()
        self.provider.gatekeeper.clear()
        self.provider.gatekeeper.update(cfg)
        return Response(status_code=204)

    async def create_user(self, request: Request) -> Response:
        try:
            body = await _json(request)
        except (ValueError, TypeError):
            return problem(400, "bad-request", "body is not a JSON object")
        uvid = body.get("user_visible_id") or f"+1555{secrets.randbelow(10**7):07d}"
        handle = f"u{len(self.users) + 1}"
        self.users[handle] = Client(handle, uvid, self.provider)
        return JSONResponse({"user": handle, "user_visible_id": uvid}, status_code=201)

    async def action(self, request: Request) -> Response:
        c = self.user(request)
        if c is None:
            return problem(404, "unknown-user")
        try:
            body = await _json(request)
        except (ValueError, TypeError):
            return problem(400, "bad-request", "body is not a JSON object")
        act = request.path_params["action"]
        if act == "enlist":
            ok, reason = await c.enlist()
            if ok:
                return JSONResponse({"login": c.login})
            return problem(422, "enlistment-failed", f"enlistment failed: {reason}", reason)
        if act == "connect":
            try:
                await c.connect()
            except ConnectFailed as exc:
                return problem(502, "connect-failed", f"connection refused: {exc.reason}", exc.reason)
            return Response(status_code=204)
        if act == "disconnect":
            await c.disconnect()
            return Response(status_code=204)
        if act == "messages":
            return self.send(c, body)
        if act == "read":
            if not isinstance(body.get("message_ids"), list) or not body.get("peer"):
                return problem(400, "bad-request", "peer and message_ids required")
            if not c.connected:
                return problem(409, "not-connected")
            c.spawn(c.mark_read(body["peer"], [str(i) for i in body["message_ids"]]))
            return Response(status_code=204)
        if act in ("block", "unblock"):
            if not isinstance(body.get("peer"), str):
                return problem(400, "bad-request", "peer required")
            await c.block(body["peer"], act == "block")
            return Response(status_code=204)
        if act == "reachability-ping":
            if not isinstance(body.get("recipient"), str):
                return problem(400, "bad-request", "recipient required")
            if not c.connected:
                return problem(409, "not-connected")
            c.spawn(c.reachability_ping(body["recipient"]))
            return Response(status_code=202)
        if act == "rotate-signed-prekey":
            if c.store is None:
                return problem(409, "not-enlisted")
            await c.rotate_signed_prekey()
            return Response(status_code=204)
        if act == "opt-out":
            await c.opt_out()
            return Response(status_code=204)
        if act == "delete-account":
            await c.delete_account()
            return Response(status_code=204)
        if act == "typing":
            states = {"composing": pb.CHAT_STATE_TYPE_COMPOSING, "paused": pb.CHAT_STATE_TYPE_PAUSED}
            if not isinstance(body.get("peer"), str) or body.get("state") not in states:
                return problem(400, "bad-request", "peer and state (composing | paused) required")
            c.typing(body["peer"], states[body["state"]])
            return Response(status_code=202)
        return problem(404, "not-found")

    def send(self, c: Client, body: dict[str, Any]) -> Response:
        to, kind = body.get("to"), body.get("kind")
        if not isinstance(to, str) or kind not in ("text", "reply", "media", "reaction"):
            return problem(400, "bad-request", "to and kind required")
        if kind == "media":
            return problem(501, "unsupported", "sending media is not implemented (media profile not claimed)")
        if to in c.blocked:
            return problem(409, "blocked", "the user blocked this peer")
        if to in c.revoked or to in c.awaiting_consent:
            return problem(409, "not-opted-in", "no consent from this peer")
        if not c.connected:
            return problem(409, "not-connected")
        m = cpb.Message()
        try:
            if kind == "text":
                m.conversation = body["text"]
            elif kind == "reply":
                m.extended_text.text = body["text"]
                m.extended_text.context_info.quoted_message_id = body["quoted_message_id"]
                m.extended_text.context_info.quoted_sender = body["quoted_sender"]
            else:
                m.reaction.key.remote_jid = to
                m.reaction.key.from_me = body["target_sender"] == c.login
                m.reaction.key.id = body["target_message_id"]
                m.reaction.emoji = body["emoji"]
                m.reaction.sender_timestamp_ms = int(time.time() * 1000)
        except (KeyError, TypeError, ValueError) as exc:
            return problem(400, "bad-request", f"bad {kind}: {exc}")
        return JSONResponse({"message_id": c.send(to, m)}, status_code=202)

    async def inbox(self, request: Request) -> Response:
        c = self.user(request)
        if c is None:
            return problem(404, "unknown-user")
        return JSONResponse({"items": c.inbox(request.query_params.get("peer"))})

    async def events(self, request: Request) -> Response:
        c = self.user(request)
        if c is None:
            return problem(404, "unknown-user")
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return problem(400, "bad-request", "after must be an integer")
        return JSONResponse({"events": [e for e in c.events if e["seq"] > after]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/info", self.info, methods=["GET"]),
            Route("/reset", self.reset, methods=["POST"]),
            Route("/users", self.create_user, methods=["POST"]),
            Route("/users/{user}/inbox", self.inbox, methods=["GET"]),
            Route("/users/{user}/events", self.events, methods=["GET"]),
            Route("/users/{user}/{action}", self.action, methods=["POST"]),
        ])
