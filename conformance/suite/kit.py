"""The run-wide context every check uses: the background loop, the gatekeeper simulator, the
provider under test (external or the embedded reference provider), and bounded clients.

Checks are synchronous; anything asyncio (the simulator, an embedded provider) runs on the
kit's private loop through :meth:`Kit.run`, always with the area's timeout.
"""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine, NoReturn, TypeVar

from conformance.bounded_http import BoundedHttp
from conformance.embedded import start_embedded_provider, start_gatekeeper, stop_servers
from conformance.evidence_log import Evidence
from conformance.gatekeeper import Gatekeeper, SimUser
from conformance.gatekeeper.settings import Settings
from conformance.harness_client import HarnessClient
from conformance.loop import LoopThread
from conformance.profile import Declaration, Profile
from conformance.verdicts import fail

__all__ = ["Kit", "ProviderUser", "start_kit"]

PROVIDER_ID = "provider-under-test"
Event = dict[str, Any]
T = TypeVar("T")


@dataclass
class ProviderUser:
    """A provider test user as the harness knows it, with its gatekeeper login once enlisted."""

    handle: str
    user_visible_id: str
    login: str = ""


@dataclass
class Kit:
    loop: LoopThread
    gk: Gatekeeper
    profile: Profile
    declaration: Declaration
    target: str
    harness_url: str
    http: BoundedHttp
    media_base: str
    issuer: str
    embedded: Any = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="conformance-")))
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    worker: str = ""
    #: Folders holding this run's secrets (embedded provider's identities, sessions, keys).
    state_dirs: list[Path] = field(default_factory=list)
    #: CHN-020: a key G publishes from the start for each declared alternative algorithm.
    push_alt_keys: dict[str, Any] = field(default_factory=dict)

    def declared_push_algs(self) -> frozenset[str]:
        """CHN-020: RS256 always, plus the alternatives the declaration lists in
        ``push_token_algs`` (the embedded reference provider declares all three)."""
        declared = self.declaration.data.get("push_token_algs")
        if declared is None and self.embedded is not None:
            declared = self.embedded.push_token_algs
        return frozenset({"RS256", *(declared or ())})

    def push_key(self, alg: str) -> Any:
        """G's published signing key for ``alg``: the current one (RS256) or an alternative."""
        return self.gk.keys.current if alg == self.gk.keys.current.alg else self.push_alt_keys[alg]

    # -- time-bounded access to the simulator's loop ------------------------------------------
    def timeout(self, area: str) -> float:
        return self.profile.timeout(area)

    def run(self, coro: Coroutine[Any, Any, Any], area: str = "e2e", timeout: float | None = None) -> Any:
        return self.loop.run(coro, timeout or self.timeout(area))

    def call(self, fn: Callable[..., Any], *args: Any, area: str = "e2e", **kw: Any) -> Any:
        """Call a synchronous simulator method on its loop (they touch loop-owned state)."""
        async def _call() -> Any:
            return fn(*args, **kw)
        return self.run(_call(), area)

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool] | None = None, *, area: str = "e2e",
                   timeout: float | None = None, since: int = 0, **match: Any) -> dict[str, Any]:
        """Wait (event-driven, bounded) for a simulator event; raises TimeoutError naming it."""
        t = timeout or self.timeout(area)
        return self.loop.run(self.gk.log.wait_for(predicate, timeout=t, since=since, **match), t + 1)

    def mark(self) -> int:
        return self.gk.log.mark()

    # -- the checks' waits: one implementation, event-driven, always with a deadline -----------
    def expect(self, expected: str, predicate: Callable[[Event], bool] | None = None, *,
               since: int, area: str = "e2e", timeout: float | None = None,
               story: Callable[[], str] | None = None, **match: Any) -> Event:
        """The first matching simulator event (from ``since`` on) the provider must cause; its
        absence within ``timeout`` (default: the area's) is a FAIL naming ``expected``, with
        ``story()`` (e.g. the events seen) or the wait's own description as the observation."""
        try:
            return self.wait_event(predicate, area=area, since=since, timeout=timeout, **match)
        except TimeoutError as exc:
            waited = timeout or self.timeout(area)
            _fail(expected, f"nothing within {waited:g} s; {story() if story is not None else exc}")

    def within(self, seconds: float | None, predicate: Callable[[Event], bool] | None = None, *,
               since: int, area: str = "e2e", **match: Any) -> Event | None:
        """A matching event already logged (from ``since`` on) or arriving within ``seconds``
        (None: the area's timeout; 0 or less: only what is already there), else None."""
        if seconds is not None and seconds <= 0:
            found = [e for e in self.events(since=since, **match)
                     if predicate is None or predicate(e)]
            return found[0] if found else None
        try:
            return self.wait_event(predicate, area=area, since=since, timeout=seconds, **match)
        except TimeoutError:
            return None

    def poll(self, read: Callable[[], T], done: Callable[[T], bool] = bool, *,
             login: str | None = None, wake: Callable[[Event], bool] | None = None,
             timeout: float | None = None, area: str = "e2e", step: float = 0.5) -> T:
        """``read()`` (a harness read the simulator cannot see) until ``done(value)`` or the
        deadline (``timeout``, default the area's); returns the last value read. Between reads
        it waits for the next simulator event of ``login`` (or ``wake``), at most ``step``
        seconds: a change on the provider's side usually shows up as traffic with G first."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout(area))
        woken = wake if wake is not None else (lambda e: e["login"] == login)
        while True:
            mark = self.mark()
            value = read()
            left = deadline - time.monotonic()
            if done(value) or left <= 0:
                return value
            try:
                self.wait_event(woken, area=area, since=mark, timeout=min(step, left))
            except TimeoutError:
                pass

    def events(self, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        """Simulator events (read on the loop, where the log is appended to)."""
        return self.call(lambda: self.gk.log.events(since=since, **match))

    # -- users -------------------------------------------------------------------------------
    def unique(self, prefix: str) -> str:
        return f"{prefix}{self.worker}{next(self._ids)}{secrets.token_hex(2)}"

    def g_user(self, consent: str = "opted_in") -> SimUser:
        return self.run(self.gk.create_user(self.unique("g"), consent), "e2e")

    def harness(self, evidence: Evidence | None) -> HarnessClient:
        return HarnessClient(self.harness_url, self.http, evidence, timeout=max(30.0, self.timeout("e2e") * 2),
                             deadline=self.profile.deadline("harness", 60.0))

    def url(self, path: str) -> str:
        return self.target.rstrip("/") + path

    def close(self, *, keep_state: bool = False) -> None:
        """Stop everything; then delete the run's secret-holding state unless ``keep_state``."""
        try:
            self._stop()
        finally:
            if not keep_state:
                for d in [self.tmp, *self.state_dirs]:
                    shutil.rmtree(d, ignore_errors=True)

    def _stop(self) -> None:
        stop_servers(self.loop, self.gk, self.embedded, http=self.http, what="kit")


def _fail(expected: str, observed: str) -> NoReturn:
    fail(expected, observed)
    raise AssertionError("unreachable: fail() raises")


def _media_base(target: str, declared: str | None) -> str:
    base = declared or "/media"
    return base if base.startswith(("http://", "https://")) else target.rstrip("/") + base


def start_kit(*, profile: Profile, declaration: Declaration, target: str | None, harness: str | None,
              gatekeeper_listen: str, gatekeeper_url: str | None, insecure: bool,
              worker: str = "", reference_faults: tuple[str, ...] = (), http2: bool = False,
              wire: str = "open") -> Kit:
    loop = LoopThread()
    gk = Gatekeeper(Settings(wire=wire))
    try:
        start_gatekeeper(loop, gk, gatekeeper_listen, gatekeeper_url)
        embedded = None
        verify: bool | str = not insecure
        if not target:
            faults = reference_faults + tuple(
                f for f in os.environ.get("CONFORMANCE_EMBEDDED_FAULTS", "").split(",") if f)
            # data_dir: 0700, removed by Kit.close
            embedded, data_dir = start_embedded_provider(loop, faults)
            target, harness = embedded.target_url, embedded.harness_url
            verify = str(embedded.ca_certificate)
        endpoints = declaration.data.get("endpoints", {})
        http = BoundedHttp(verify=verify, timeout=profile.timeout("identity"),
                           deadline=profile.deadline("exchange"),
                           max_body=int(profile.parameters.get("max_response_bytes", 1 << 20)),
                           prefer_http2=http2)
        issuer = endpoints.get("issuer") or target.rstrip("/")
        media_base = _media_base(target, endpoints.get("media_base"))
        ca = Path(verify).read_text() if isinstance(verify, str) else None
        gk.register_provider(PROVIDER_ID, jwks_url=target.rstrip("/") + "/.well-known/oauth/openid/jwks",
                             push_url=target.rstrip("/") + "/push", media_base=media_base,
                             issuer=issuer, audience=endpoints.get("push_audience") or target.rstrip("/"),
                             ca_certificates=ca,
                             verify_tls=not insecure)  # --insecure: G does not verify either
        kit = Kit(loop, gk, profile, declaration, target.rstrip("/"), harness or "", http, media_base,
                  issuer, embedded, worker=worker,
                  state_dirs=[data_dir] if embedded is not None else [])
        # Published before the provider first fetches G's JWK Set; G keeps signing RS256.
        for alg in sorted(kit.declared_push_algs() - {gk.keys.current.alg}):
            kit.push_alt_keys[alg] = kit.call(gk.keys.publish, alg, area="channel")
        if harness:
            kit.harness(None).reset(gk.config_for_provider())
        return kit
    except BaseException:
        loop.close()
        raise
