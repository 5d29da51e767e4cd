"""The kit's HTTP client for the provider's server and harness: bounded in every way.

A misbehaving provider must not hang or flood the kit: every exchange has a total wall-clock
*deadline* (connect, TLS, headers and body together, whatever the peer trickles), every single
read a timeout, response bodies are read up to a cap (the rest is dropped and flagged),
redirects are never followed (a check sees the 3xx itself), and TLS is verified unless
``--insecure``.

httpx only bounds each read (``httpx.Timeout``), so a peer sending one byte every few seconds
would keep a request alive forever. The deadline is enforced one level down, in a thin wrapper
around httpcore's own socket backend: every connect, TLS handshake, read and write is clamped to
the time left, and refused once it is gone. No maintained library offers a total deadline for
a synchronous httpx request, hence this small wrapper.
"""
from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from .evidence_log import Evidence

__all__ = ["HttpResult", "BoundedHttp", "DEFAULT_DEADLINE"]

#: Seconds for one whole exchange when the profile names none.
DEFAULT_DEADLINE = 30.0


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
    elapsed: float = 0.0
    #: How far the exchange got when it ended: "connect", "headers", "body" or "done".
    phase: str = "done"
    bytes_received: int = 0
    deadline_hit: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    def describe(self) -> str:
        if self.deadline_hit:
            return (f"{self.method} {self.url} -> deadline exceeded after {self.elapsed:.1f} s "
                    f"in phase {self.phase!r}, {self.bytes_received} bytes received"
                    + (f" (status {self.status})" if self.status else ""))
        if self.error:
            return f"{self.method} {self.url} -> no response ({self.error})"
        return (f"{self.method} {self.url} -> {self.status} over {self.http_version}, "
                f"{len(self.body)} bytes{' (truncated)' if self.truncated else ''}, "
                f"Content-Type {self.headers.get('content-type', '-')!r}")


class _Budget(threading.local):
    """The current thread's exchange: when it must end, and what it has received so far."""

    def __init__(self) -> None:
        self.until: float | None = None
        self.received = 0
        self.expired = False

    def clamp(self, timeout: float | None) -> float | None:
        if self.until is None:
            return timeout
        left = self.until - time.monotonic()
        if left <= 0:
            self.expired = True
            raise httpcore.ReadTimeout("exchange deadline exceeded")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, budget: _Budget) -> None:
        self._inner, self._budget = inner, budget

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = self._inner.read(max_bytes, self._budget.clamp(timeout))
        except httpcore.ReadTimeout:
            if self._budget.until is not None and time.monotonic() >= self._budget.until:
                self._budget.expired = True
            raise
        self._budget.received += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._budget.clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, self._budget.clamp(timeout))
        except httpcore.ConnectTimeout:
            if self._budget.until is not None and time.monotonic() >= self._budget.until:
                self._budget.expired = True
            raise
        return _DeadlineStream(inner, self._budget)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, budget: _Budget) -> None:
        self._inner, self._budget = httpcore.SyncBackend(), budget

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, self._budget.clamp(timeout),
                                                       local_address, socket_options), self._budget)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not a provider endpoint")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class BoundedHttp:
    def __init__(self, *, verify: bool | str = True, timeout: float = 10.0,
                 max_body: int = 1 << 20, prefer_http2: bool = False,
                 deadline: float = DEFAULT_DEADLINE) -> None:
        self.prefer_http2 = prefer_http2
        self.deadline = deadline
        self._budget = _Budget()
        # A path is a CA bundle to trust instead of the system store (embedded runs).
        self.verify: bool | ssl.SSLContext = (ssl.create_default_context(cafile=verify)
                                              if isinstance(verify, str) else verify)
        self.timeout = timeout
        self.max_body = max_body
        self._clients: dict[bool, httpx.Client] = {}

    def _client(self, http2: bool) -> httpx.Client:
        if http2 not in self._clients:
            transport = httpx.HTTPTransport(http1=not http2, http2=http2, verify=self.verify,
                                            trust_env=False, limits=httpx.Limits(keepalive_expiry=2.0))
            # httpx offers no public hook for the socket layer; its pool is httpcore's, whose
            # backend is the documented extension point (httpcore "network backends").
            transport._pool._network_backend = _DeadlineBackend(self._budget)
            self._clients[http2] = httpx.Client(
                transport=transport,
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
                timeout: float | None = None, deadline: float | None = None) -> HttpResult:
        """``http2=None`` uses the run's preference (``--http2``); True/False force one.

        ``deadline`` (default: the run's) bounds the whole exchange; when it is hit the result
        has ``deadline_hit`` and an error saying how far the exchange got."""
        if http2 is None:
            http2 = self.prefer_http2
        cap = max_body or self.max_body
        budget = self._budget
        limit = deadline or self.deadline
        t0 = time.monotonic()
        budget.until, budget.received, budget.expired = t0 + limit, 0, False
        phase, status, version, hdrs, raw = "connect", 0, "", {}, []
        body, truncated = bytearray(), False
        error = ""
        try:
            with self._client(http2).stream(method, url, headers=headers, content=content,
                                            timeout=timeout or self.timeout) as resp:
                phase, status, version = "body", resp.status_code, resp.http_version
                hdrs = {k.lower(): v for k, v in resp.headers.items()}
                raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in resp.headers.raw]
                for chunk in resp.iter_raw():
                    body += chunk
                    if len(body) > cap:
                        truncated = True
                        del body[cap:]
                        break
                    if time.monotonic() >= budget.until:
                        budget.expired = True
                        raise httpx.ReadTimeout("exchange deadline exceeded")
                phase = "done"
        except httpx.HTTPError as exc:
            if phase == "connect" and budget.received:
                phase = "headers"
            error = f"{type(exc).__name__}: {exc}"
        finally:
            received, expired = budget.received, budget.expired
            budget.until = None
        elapsed = time.monotonic() - t0
        if expired:
            error = (f"deadline of {limit:g} s exceeded after {elapsed:.1f} s in phase {phase!r}, "
                     f"{received} bytes received")
        if error:
            # A failed exchange yields no usable response: checks see status 0 and no body,
            # the evidence says how far it got.
            res = HttpResult(method, url, 0, {}, b"", version, error=error, elapsed=elapsed,
                             phase=phase, bytes_received=received, deadline_hit=expired)
            partial_status = status
        else:
            res = HttpResult(method, url, status, hdrs, bytes(body), version, truncated,
                             raw_headers=raw, elapsed=elapsed, bytes_received=received)
            partial_status = status
        if evidence is not None:
            evidence.record("http", exchange=not res.error, method=method, url=url, status=res.status,
                            http_version=res.http_version, response_bytes=len(res.body),
                            content_type=res.headers.get("content-type", ""), error=res.error,
                            request_headers={k: v for k, v in (headers or {}).items()},
                            elapsed_s=round(elapsed, 3), phase=phase, bytes_received=received,
                            deadline_hit=expired, partial_status=partial_status)
        return res

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
