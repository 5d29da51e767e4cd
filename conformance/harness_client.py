"""Synchronous client of the provider's harness API (``docs/spec/openapi/harness.yaml``).

Every call is bounded (timeout, body cap), recorded as evidence, and failures come back as a
:class:`HarnessError` carrying the problem+json body, so a check can tell "the client refused"
(a verdict) from "the harness is broken" (an ERROR).
"""
from __future__ import annotations

import base64
import json
from typing import Any

from .evidence_log import Evidence
from .bounded_http import BoundedHttp, HttpResult

__all__ = ["HarnessClient", "HarnessError"]


class HarnessError(Exception):
    def __init__(self, result: HttpResult, problem: dict[str, Any] | None) -> None:
        self.result = result
        self.status = result.status
        self.problem = problem or {}
        detail = self.problem.get("detail") or self.problem.get("title") or result.error or ""
        super().__init__(f"harness {result.method} {result.url} -> {result.status or 'no response'}: {detail}")

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))


class HarnessClient:
    def __init__(self, base_url: str, http: BoundedHttp, evidence: Evidence | None = None,
                 timeout: float = 30.0, deadline: float | None = None) -> None:
        self.base = base_url.rstrip("/")
        # A harness call's total budget: at least its read timeout, whatever the harness trickles.
        self.deadline = max(deadline or 0.0, timeout)
        self.http = http
        self.evidence = evidence
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201, 202, 204),
             timeout: float | None = None) -> Any:
        headers = {"accept": "application/json"}
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        res = self.http.request(method, self.base + path, headers=headers, content=content,
                                timeout=timeout or self.timeout, max_body=64 << 20,
                                deadline=max(self.deadline, timeout or 0.0))
        if self.evidence is not None:
            self.evidence.record("harness", exchange=not res.error, method=method, path=path,
                                 status=res.status, request=body if path != "/reset" else "<config>",
                                 error=res.error, elapsed_s=round(res.elapsed, 3), phase=res.phase,
                                 bytes_received=res.bytes_received, deadline_hit=res.deadline_hit)
        if res.error or res.status not in ok:
            problem = None
            try:
                problem = json.loads(res.body) if res.body else None
            except ValueError:
                pass
            raise HarnessError(res, problem if isinstance(problem, dict) else None)
        if not res.body:
            return None
        try:
            return json.loads(res.body)
        except ValueError as exc:
            raise HarnessError(res, {"detail": f"harness answered non-JSON: {exc}"}) from exc

    # -- the harness operations -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return self.call("GET", "/info")

    def reset(self, gatekeeper_config: dict[str, Any]) -> None:
        self.call("POST", "/reset", gatekeeper_config)

    def create_user(self, user_visible_id: str | None = None) -> dict[str, Any]:
        return self.call("POST", "/users", {"user_visible_id": user_visible_id} if user_visible_id else {})

    def enlist(self, user: str) -> dict[str, Any]:
        return self.call("POST", f"/users/{user}/enlist")

    def connect(self, user: str) -> None:
        self.call("POST", f"/users/{user}/connect")

    def disconnect(self, user: str, wake_on_push: bool = True) -> None:
        self.call("POST", f"/users/{user}/disconnect", {"wake_on_push": wake_on_push})

    def send_text(self, user: str, to: str, text: str) -> str:
        return self.call("POST", f"/users/{user}/messages", {"to": to, "kind": "text", "text": text})["message_id"]

    def send_reply(self, user: str, to: str, text: str, quoted_message_id: str,
                   quoted_sender: str) -> str:
        return self.call("POST", f"/users/{user}/messages",
                         {"to": to, "kind": "reply", "text": text,
                          "quoted_message_id": quoted_message_id,
                          "quoted_sender": quoted_sender})["message_id"]

    def send_reaction(self, user: str, to: str, target_message_id: str, target_sender: str,
                      emoji: str) -> str:
        return self.call("POST", f"/users/{user}/messages",
                         {"to": to, "kind": "reaction", "target_message_id": target_message_id,
                          "target_sender": target_sender, "emoji": emoji})["message_id"]

    def send_media(self, user: str, to: str, data: bytes, media_type: str, mimetype: str,
                   **extra: Any) -> str:
        media = {"type": media_type, "mimetype": mimetype,
                 "data": base64.b64encode(data).decode(), **extra}
        return self.call("POST", f"/users/{user}/messages",
                         {"to": to, "kind": "media", "media": media})["message_id"]

    def read(self, user: str, peer: str, message_ids: list[str]) -> None:
        self.call("POST", f"/users/{user}/read", {"peer": peer, "message_ids": message_ids})

    def block(self, user: str, peer: str) -> None:
        self.call("POST", f"/users/{user}/block", {"peer": peer})

    def unblock(self, user: str, peer: str) -> None:
        self.call("POST", f"/users/{user}/unblock", {"peer": peer})

    def reachability_ping(self, user: str, peer: str) -> Any:
        return self.call("POST", f"/users/{user}/reachability-ping", {"recipient": peer})

    def rotate_signed_prekey(self, user: str) -> Any:
        return self.call("POST", f"/users/{user}/rotate-signed-prekey")

    def advance_clock(self, user: str, seconds: float) -> float:
        """Let ``seconds`` pass on the user's client clock (optional harness action); returns
        the clock's total offset from wall time."""
        return float(self.call("POST", f"/users/{user}/clock", {"advance_s": seconds})["offset_s"])

    def opt_out(self, user: str) -> None:
        self.call("POST", f"/users/{user}/opt-out")

    def typing(self, user: str, peer: str, state: str) -> None:
        self.call("POST", f"/users/{user}/typing", {"peer": peer, "state": state})

    def delete_account(self, user: str) -> None:
        self.call("POST", f"/users/{user}/delete-account")

    def inbox(self, user: str, peer: str | None = None) -> list[dict[str, Any]]:
        q = f"?peer={peer}" if peer else ""
        return self.call("GET", f"/users/{user}/inbox{q}")["items"]

    def events(self, user: str, after: int = 0) -> list[dict[str, Any]]:
        return self.call("GET", f"/users/{user}/events?after={after}")["events"]
