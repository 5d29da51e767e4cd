"""The kit's HTTP client for the provider's server and harness: bounded in every way.

A misbehaving provider must not hang or flood the kit: every request has a timeout, response
bodies are read up to a cap (the rest is dropped and flagged), redirects are never followed
(a check sees the 3xx itself), and TLS is verified unless ``--insecure``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ssl

import httpx

from .evidence_log import Evidence

__all__ = ["HttpResult", "BoundedHttp"]


@dataclass
class HttpResult:
    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    http_version: str
    truncated: bool = False
    error: str = ""
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    def describe(self) -> str:
        if self.error:
            return f"{self.method} {self.url} -> no response ({self.error})"
        return (f"{self.method} {self.url} -> {self.status} over {self.http_version}, "
                f"{len(self.body)} bytes{' (truncated)' if self.truncated else ''}, "
                f"Content-Type {self.headers.get('content-type', '-')!r}")


class BoundedHttp:
    def __init__(self, *, verify: bool | str = True, timeout: float = 10.0,
                 max_body: int = 1 << 20, prefer_http2: bool = False) -> None:
        self.prefer_http2 = prefer_http2
        # A path is a CA bundle to trust instead of the system store (embedded runs).
        self.verify: bool | ssl.SSLContext = (ssl.create_default_context(cafile=verify)
                                              if isinstance(verify, str) else verify)
        self.timeout = timeout
        self.max_body = max_body
        self._clients: dict[bool, httpx.Client] = {}

    def _client(self, http2: bool) -> httpx.Client:
        if http2 not in self._clients:
            self._clients[http2] = httpx.Client(
                http1=not http2, http2=http2, verify=self.verify, follow_redirects=False,
                timeout=httpx.Timeout(self.timeout), trust_env=False,
                # Expire idle connections before servers do (the reference provider: 5 s), so
                # a request never rides a connection the server is closing.
                limits=httpx.Limits(keepalive_expiry=2.0),
                headers={"accept-encoding": "identity", "user-agent": "interop-conformance-kit"})
        return self._clients[http2]

    def request(self, method: str, url: str, *, evidence: Evidence | None = None,
                headers: dict[str, str] | None = None, content: bytes | None = None,
                http2: bool | None = None, max_body: int | None = None,
                timeout: float | None = None) -> HttpResult:
        """``http2=None`` uses the run's preference (``--http2``); True/False force one."""
        if http2 is None:
            http2 = self.prefer_http2
        cap = max_body or self.max_body
        try:
            with self._client(http2).stream(method, url, headers=headers, content=content,
                                            timeout=timeout or self.timeout) as resp:
                body, truncated = bytearray(), False
                for chunk in resp.iter_raw():
                    body += chunk
                    if len(body) > cap:
                        truncated = True
                        del body[cap:]
                        break
                res = HttpResult(method, url, resp.status_code,
                                 {k.lower(): v for k, v in resp.headers.items()}, bytes(body),
                                 resp.http_version, truncated,
                                 raw_headers=[(k.decode("latin-1").lower(), v.decode("latin-1"))
                                              for k, v in resp.headers.raw])
        except httpx.HTTPError as exc:
            res = HttpResult(method, url, 0, {}, b"", "", error=f"{type(exc).__name__}: {exc}")
        if evidence is not None:
            evidence.record("http", exchange=not res.error, method=method, url=url, status=res.status,
                            http_version=res.http_version, response_bytes=len(res.body),
                            content_type=res.headers.get("content-type", ""), error=res.error,
                            request_headers={k: v for k, v in (headers or {}).items()})
        return res

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
