"""Locust user classes of ``conformance load``: G's traffic towards a provider server.

Run by the ``locust`` command (``conformance load`` starts it; a distributed worker runs
``locust -f <this file> --worker --master-host ...``). Everything a user needs comes from the
scene's control API (``--scene-url``, forwarded by the master to every worker): the plan (target,
CA, users, blobs, rates) and G-signed push tokens.

- :class:`PushUser`: ``POST /push`` with G-signed tokens (fetched from the scene, which signs each
  once per token lifetime; cached here until it nears expiry — never signed per request) for
  enlisted users (200, empty body) and unknown users (404, or 200 empty); first it pushes each
  offline wake-on-push probe user once, whose wake-up the scene watches on G's side.
- :class:`MediaUser`: ``GET {media_base}/{ref}`` over HTTP/1.1 (geventhttpclient) and HTTP/2
  (httpx, ALPN h2), full and ranged; every body (or the stated sample) is checked against the
  blob's ``fileEncSha256`` (full) or the verified blob's bytes (ranged).
- :class:`JwksUser`: polls the JWK Set with conditional requests when validators are given.
- :class:`ConversationUser`: one G user's conversation with a provider user, both ways.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import ssl
import threading
import time
import urllib.request
from typing import Any

from locust import constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser

__all__ = ["PushUser", "MediaUser", "JwksUser", "ConversationUser"]

logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

_PLAN: dict[str, Any] = {}
_PLAN_LOCK = threading.Lock()
#: Verified blob bytes by URL, fetched once per Locust process (see MediaUser.on_start).
_REFERENCE: dict[str, bytes] = {}
_REFERENCE_LOCK = threading.Lock()  # gevent-patched: media users of this process take turns
#: Seconds any control-API or provider request may take (a Locust failure after that, no hang).
TIMEOUT = 30.0


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--scene-url", default="", env_var="CONFORMANCE_LOAD_SCENE",
                        help="control API of the `conformance load` scene (G and the plan)")


def _scene_url(environment: Any) -> str:
    url = getattr(environment.parsed_options, "scene_url", "") if environment.parsed_options else ""
    if not url:
        raise RuntimeError("no --scene-url: start this locustfile through `conformance load`, "
                           "or pass the scene's control URL")
    return url.rstrip("/")


def _scene(environment: Any, path: str) -> Any:
    with urllib.request.urlopen(_scene_url(environment) + path, timeout=TIMEOUT) as r:
        return json.loads(r.read())


def plan(environment: Any) -> dict[str, Any]:
    with _PLAN_LOCK:
        if not _PLAN:
            _PLAN.update(_scene(environment, f"/plan?pid={os.getpid()}"))
        return _PLAN


#: The master's (or local run's) environment and when all users had been started.
_RUN: dict[str, Any] = {"env": None, "spawned_at": None}


@events.init.add_listener
def _counts(environment: Any, **_: Any) -> None:
    """On the master (or a local run) fix each class's user count from the plan: Locust's
    dispatcher hands workers their share of ``fixed_count`` users."""
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        return
    _RUN["env"] = environment
    s = plan(environment)["settings"]
    for cls, key in ((PushUser, "push"), (MediaUser, "media"), (JwksUser, "jwks"),
                     (ConversationUser, "conversation")):
        cls.fixed_count = int(s[key]["users"])


#: Seconds after the ramp whose answers still count as the ramp's (the last users' start-up).
SETTLE_S = 1.0
#: Suffix of the request names of the ramp: checked like all others, not timed (LOAD-002/005/006).
RAMP = " (ramp)"


@events.spawning_complete.add_listener
def _spawned(**_: Any) -> None:
    """Fired on the master (or local runner) and, from it, on every worker."""
    if _RUN["spawned_at"] is None:  # the first time only: the end of the ramp
        _RUN["spawned_at"] = time.time()


def timed(name: str) -> str:
    """``name`` once the ramp is over (plus ``SETTLE_S``), ``name (ramp)`` before. Why: while
    users start, the kit itself bursts (every user's TLS handshake, the wake-probe clients
    reconnecting, the media reference fetches), and a short run's p95/p99 were those of that
    burst, not of G's steady traffic. Ramp answers are still judged for errors and counted."""
    t = _RUN["spawned_at"]
    return name if t is not None and time.time() >= t + SETTLE_S else name + RAMP


@events.quit.add_listener
def _write_per_second(**_: Any) -> None:
    """Next to Locust's CSV files: requests per wall-clock second per request name (Locust's
    own buckets, merged from every worker by the master) and when the ramp ended, so the judge
    can tell the rate sustained once every user runs from a whole-run average that includes
    the ramp and each user's start-up."""
    env = _RUN["env"]
    prefix = getattr(env.parsed_options, "csv_prefix", None) if env is not None else None
    if not prefix:
        return
    per_second = {name: {str(t): n for t, n in sorted(entry.num_reqs_per_sec.items())}
                  for (name, _method), entry in env.stats.entries.items()}
    with open(f"{prefix}_per_second.json", "w", encoding="utf-8") as fh:
        json.dump({"spawned_at": _RUN["spawned_at"], "per_second": per_second}, fh)


def _ssl_context(p: dict[str, Any]) -> ssl.SSLContext:
    if p.get("insecure"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cadata=p["ca_pem"]) if p.get("ca_pem") else \
        ssl.create_default_context()
    return ctx


class _PlanUser(FastHttpUser):
    abstract = True
    insecure = False
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT

    def __init__(self, environment: Any) -> None:
        self.plan = plan(environment)
        ctx = _ssl_context(self.plan)
        self.ssl_context_factory = lambda: ctx
        super().__init__(environment)

    def wait_time(self) -> float:
        return self._pace(self)

    def _rate(self, rate: float) -> None:
        self._pace = constant_throughput(max(float(rate), 0.01))


class PushUser(_PlanUser):
    """G's push traffic (spec §5.2 under load: LOAD-001..LOAD-003)."""

    def on_start(self) -> None:
        s = self.plan["settings"]["push"]
        self._rate(s["rate_per_user"])
        self.enlisted = list(self.plan["push"].get("enlisted", []))
        self.unknown = list(self.plan["push"].get("unknown", []))
        self.unknown_share = float(s.get("unknown_share", 0.2)) if self.enlisted else 1.0
        self.probing = bool(self.plan["push"].get("probes"))
        self.tokens: dict[str, tuple[str, float]] = {}
        self.next = random.randrange(len(self.enlisted)) if self.enlisted else 0

    def _token(self, sub: str) -> str:
        cached = self.tokens.get(sub)
        if cached is None or time.monotonic() > cached[1]:
            doc = _scene(self.environment, "/token?sub=" + urllib.request.quote(sub, safe=""))
            # Renew a little before G's own renewal point; never per request.
            cached = (doc["token"], time.monotonic() + max(1.0, doc["expires_in"] * 0.5))
            self.tokens[sub] = cached
        return cached[0]

    def _push(self, sub: str, name: str, enlisted: bool) -> None:
        headers = {"Authorization": f"Bearer {self._token(sub)}",
                   "Content-Type": "application/json"}
        body = json.dumps({"to": sub})
        with self.client.post(self.plan["push_url"], data=body, headers=headers, name=name,
                              catch_response=True) as r:
            content = r.content or b""
            if r.status_code == 200 and not content:
                r.success()
            elif not enlisted and r.status_code == 404:
                r.success()
            else:
                r.failure(f"status {r.status_code}, {len(content)} body bytes "
                          f"({'200 empty' if enlisted else '404 or 200 empty'} expected)")

    @task
    def push(self) -> None:
        if self.probing:
            sub = _scene(self.environment, "/probe").get("sub")
            if sub:
                self._push(sub, "push wake-probe", True)
                return
            self.probing = False
        if self.enlisted and random.random() >= self.unknown_share:
            sub = self.enlisted[self.next % len(self.enlisted)]
            self.next += 1
            self._push(sub, timed("push enlisted"), True)
        else:
            self._push(random.choice(self.unknown), timed("push unknown"), False)


class MediaUser(_PlanUser):
    """G's media proxy fetching provider-hosted blobs (spec §7 under load: LOAD-004, LOAD-005)."""

    def on_start(self) -> None:
        s = self.plan["settings"]["media"]
        self._rate(s["rate_per_user"])
        self.range_share = float(s.get("range_share", 0.3))
        self.h2_share = float(s.get("http2_share", 0.5))
        self.sample = float(s.get("verify_sample", 1.0))
        import httpx

        self.h2 = httpx.Client(http2=True, verify=_ssl_context(self.plan), timeout=TIMEOUT)
        self.blobs: list[tuple[str, bytes, bytes]] = []
        # The previously uploaded blobs, fetched and verified once per process (not per user:
        # every media user downloading every blob at its start was a burst of the generator's
        # own making that the other scenarios' first requests waited behind): ranged answers
        # are checked against these bytes, which themselves matched fileEncSha256.
        with _REFERENCE_LOCK:
            for b in self.plan["media"]["blobs"]:
                url = f"{self.plan['media_base']}/{b['ref']}"
                want = bytes.fromhex(b["file_enc_sha256"])
                if url not in _REFERENCE:
                    self._fetch_reference(url, want)
                if url in _REFERENCE:
                    self.blobs.append((url, want, _REFERENCE[url]))

    def _fetch_reference(self, url: str, want: bytes) -> None:
        with self.client.get(url, name="media fetch-once h1", catch_response=True) as r:
            body = r.content or b""
            if r.status_code == 200 and hashlib.sha256(body).digest() == want:
                r.success()
                _REFERENCE[url] = body
            else:
                r.failure(f"status {r.status_code}, sha256 "
                          f"{'matches' if hashlib.sha256(body).digest() == want else 'differs from'} "
                          "fileEncSha256")

    def on_stop(self) -> None:
        self.h2.close()

    def _check(self, status: int, body: bytes, headers: Any, want: bytes, blob: bytes,
               rng: tuple[int, int] | None, version: str, h2: bool) -> str | None:
        if h2 and version != "HTTP/2":
            return f"answered over {version}, HTTP/2 (ALPN h2) expected"
        if rng is None:
            if status != 200:
                return f"status {status}, 200 expected"
            if random.random() < self.sample and hashlib.sha256(body).digest() != want:
                return f"body of {len(body)} bytes does not match fileEncSha256"
            return None
        a, b = rng
        if status != 206:
            return f"status {status} for bytes={a}-{b}, 206 expected"
        if random.random() < self.sample and body != blob[a:b + 1]:
            return f"206 body of {len(body)} bytes is not bytes {a}-{b} of the blob"
        cr = headers.get("content-range", "")
        if cr != f"bytes {a}-{b}/{len(blob)}":
            return f"Content-Range {cr!r}, expected 'bytes {a}-{b}/{len(blob)}'"
        return None

    @task
    def fetch(self) -> None:
        if not self.blobs:
            return
        url, want, blob = random.choice(self.blobs)
        rng = None
        if random.random() < self.range_share and len(blob) > 2:
            a = random.randrange(len(blob) - 1)
            rng = (a, random.randrange(a, min(len(blob), a + 256 * 1024)))
        h2 = random.random() < self.h2_share
        name = timed(f"media {'h2' if h2 else 'h1'} {'range' if rng else 'full'}")
        headers = {"Range": f"bytes={rng[0]}-{rng[1]}"} if rng else {}
        if not h2:
            with self.client.get(url, headers=headers, name=name, catch_response=True) as r:
                why = self._check(r.status_code, r.content or b"", r.headers or {}, want, blob,
                                  rng, "HTTP/1.1", False)
                r.failure(why) if why else r.success()
            return
        start = time.perf_counter()
        exc: Exception | None = None
        length = 0
        try:
            resp = self.h2.get(url, headers=headers)
            length = len(resp.content)
            why = self._check(resp.status_code, resp.content, resp.headers, want, blob, rng,
                              resp.http_version, True)
            if why:
                exc = AssertionError(why)
        except Exception as e:  # noqa: BLE001 - any transport failure is this request's failure
            exc = e
        self.environment.events.request.fire(
            request_type="GET", name=name, response_time=(time.perf_counter() - start) * 1000,
            response_length=length, exception=exc, context={}, url=url)


class ConversationUser(_PlanUser):
    """One simulated G user's conversation with a provider user through the chat channel
    (LOAD-008): alternately G -> provider and provider -> G (through the harness), one message
    at a time, so per-sender order is defined; delivery is judged by the scene at the end."""

    def on_start(self) -> None:
        self._rate(self.plan["settings"]["conversation"]["rate_per_user"])
        self.g = _scene(self.environment, "/conv-slot").get("g") \
            if self.plan.get("conversation") else None
        self.turn = 0

    @task
    def send(self) -> None:
        if self.g is None:
            return
        direction = ("g2p", "p2g")[self.turn % 2]
        self.turn += 1
        start = time.perf_counter()
        exc: Exception | None = None
        try:
            _scene(self.environment, f"/conv-send?g={self.g}&dir={direction}")
        except Exception as e:  # noqa: BLE001 - the send failed: this request's failure
            exc = e
        self.environment.events.request.fire(
            request_type="MSG", name=f"conversation {direction} send",
            response_time=(time.perf_counter() - start) * 1000, response_length=0,
            exception=exc, context={})


class JwksUser(_PlanUser):
    """G polling the provider's JWK Set (LOAD-006): conditional requests when validators are
    given, and every answer checked (200 with keys, or 304 to a conditional request)."""

    def on_start(self) -> None:
        s = self.plan["settings"]["jwks"]
        self._rate(1.0 / max(float(s.get("interval_s", 1.0)), 0.01))
        self.etag = self.modified = None

    @task
    def poll(self) -> None:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = self.modified
        with self.client.get(self.plan["jwks_url"], headers=headers, name=timed("jwks"),
                             catch_response=True) as r:
            if r.status_code == 304 and headers:
                r.success()
                return
            try:
                keys = json.loads(r.content or b"{}").get("keys")
            except ValueError:
                keys = None
            if r.status_code != 200 or not isinstance(keys, list) or not keys:
                r.failure(f"status {r.status_code}, a JWK Set with keys expected")
                return
            if "max-age" not in (r.headers.get("cache-control") or ""):
                r.failure("no Cache-Control max-age on the JWK Set")
                return
            self.etag = r.headers.get("etag")
            self.modified = r.headers.get("last-modified")
            r.success()


