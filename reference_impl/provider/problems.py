"""RFC 9457 problem details, shared by the provider server and the harness."""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["PROBLEM_BASE", "ProblemError", "problem", "read_limited", "read_json"]

PROBLEM_BASE = "https://interop-conformance.invalid/problems/"

_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 410: "Gone", 413: "Payload too large",
    415: "Unsupported media type", 416: "Range not satisfiable", 422: "Unprocessable content",
    429: "Too many requests", 500: "Internal error", 501: "Not implemented",
    502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout",
}


class ProblemError(Exception):
    def __init__(self, status: int, kind: str, detail: str = "", *, reason: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or kind)
        self.status, self.kind, self.detail, self.reason = status, kind, detail, reason
        self.headers = headers or {}

    def response(self) -> Response:
        return problem(self.status, self.kind, self.detail, reason=self.reason, headers=self.headers)


def problem(status: int, kind: str, detail: str = "", *, reason: str = "",
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + kind, "title": _TITLES.get(status, kind),
                            "status": status}
    if detail:
        body["detail"] = detail
    if reason:
        body["reason"] = reason
    return Response(json.dumps(body), status_code=status, media_type="application/problem+json",
                    headers=headers)


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ProblemError(413, "too-large", f"body larger than {limit} bytes")
        except ValueError:
            raise ProblemError(400, "bad-request", "invalid Content-Length") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, "too-large", f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    mt = content_type.split(";", 1)[0].strip().lower()
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


async def read_json(request: Request, limit: int, *, required: bool = True) -> Any:
    """Read a JSON body; 415 for another content type, 400 for malformed JSON."""
    body = await read_limited(request, limit)
    if not body and not required:
        return None
    if not _is_json(request.headers.get("content-type")):
        raise ProblemError(415, "unsupported-media-type", "expected Content-Type: application/json")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProblemError(400, "bad-request", f"malformed JSON: {exc}") from None
