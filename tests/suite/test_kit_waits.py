"""``Kit.expect`` / ``Kit.within`` / ``Kit.poll``: the checks' one wait implementation, on a
real simulator event log driven from the kit's loop thread (event-driven, bounded)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from conformance.bounded_http import BoundedHttp
from conformance.gatekeeper import Gatekeeper
from conformance.loop import LoopThread
from conformance.profile import Declaration, Profile
from conformance.suite.kit import Kit
from conformance.verdicts import CheckFailed

SLACK = 5.0  # shared 2-core CI machine under `-n auto`: stalls of ~2 s seen; upper bounds are loose
LONG = 60.0  # a deadline no correct event-driven wait comes near


@pytest.fixture
def kit() -> Iterator[Kit]:
    loop = LoopThread()
    gk = Gatekeeper()  # its log only: never started, no sockets needed for waiting
    profile = Profile("t", "1", "", (), frozenset(), {"timeouts": {"e2e": 1.0, "slow": 3.0}})
    k = Kit(loop, gk, profile, Declaration({}, "", ""), "http://127.0.0.1:9", "",
            BoundedHttp(), "", "")
    yield k
    loop.close()


def _later(kit: Kit, delay: float, kind: str, login: str | None = "l1", **detail: object) -> None:
    """Append an event from another thread after ``delay`` (on the kit's loop)."""
    def go() -> None:
        time.sleep(delay)
        kit.call(kit.gk.log.append, kind, login, **detail)
    threading.Thread(target=go, daemon=True).start()


def test_expect_returns_the_event_as_it_arrives(kit: Kit) -> None:
    mark = kit.mark()
    _later(kit, 0.2, "ping_sent", detail="x")
    t0 = time.monotonic()
    e = kit.expect("a ping", since=mark, kind="ping_sent", timeout=LONG)
    # Event-driven: expect returns once the event is logged, not at its deadline. The deadline is
    # long (60 s) so that a loaded CI machine, which can delay the logging thread or the waiter's
    # wake-up by seconds (1.7 s seen under `-n auto`), cannot make a correct wait look like a
    # timed-out one; a polling or deadline-bound wait would still take the whole 60 s.
    assert e["kind"] == "ping_sent" and time.monotonic() - t0 < LONG / 4


def test_expect_fails_naming_what_was_expected_within_the_area_timeout(kit: Kit) -> None:
    mark = kit.mark()
    t0 = time.monotonic()
    with pytest.raises(CheckFailed) as info:
        kit.expect("a pong from the client", since=mark, kind="pong", story=lambda: "events: none")
    took = time.monotonic() - t0
    assert 0.9 <= took < 1.0 + SLACK
    text = str(info.value)
    assert "a pong from the client" in text and "nothing within 1 s; events: none" in text


def test_expect_sees_events_already_logged_and_respects_since(kit: Kit) -> None:
    kit.call(kit.gk.log.append, "old", "l1")
    mark = kit.mark()
    kit.call(kit.gk.log.append, "new", "l1")
    assert kit.expect("new", since=mark, kind="new")["kind"] == "new"
    with pytest.raises(CheckFailed):
        kit.expect("old after mark", since=mark, kind="old", timeout=0.2)


def test_within_none_when_quiet_and_zero_looks_only_at_the_log(kit: Kit) -> None:
    mark = kit.mark()
    t0 = time.monotonic()
    assert kit.within(0.3, since=mark, kind="nothing") is None
    assert 0.25 <= time.monotonic() - t0 < 0.3 + SLACK
    kit.call(kit.gk.log.append, "there", "l1")
    t0 = time.monotonic()
    assert kit.within(0, since=mark, kind="there")["kind"] == "there"
    assert kit.within(0, lambda e: e["login"] == "l2", since=mark) is None
    assert time.monotonic() - t0 < SLACK  # no waiting at all (within(0) never waits)
    _later(kit, 0.2, "late")
    assert kit.within(None, since=mark, kind="late", area="slow")["kind"] == "late"


def test_poll_rereads_on_events_and_stops_at_the_deadline(kit: Kit) -> None:
    reads: list[float] = []
    box: list[str] = []

    def read() -> list[str]:
        reads.append(time.monotonic())
        return list(box)

    def arrive() -> None:
        time.sleep(0.3)
        box.append("m1")
        kit.call(kit.gk.log.append, "user_message", "l1")  # the change shows as traffic
    threading.Thread(target=arrive, daemon=True).start()
    t0 = time.monotonic()
    got = kit.poll(read, lambda v: "m1" in v, login="l1", timeout=LONG, step=LONG)
    assert got == ["m1"] and time.monotonic() - t0 < LONG / 4  # a step-bound poll takes 60 s
    assert len(reads) <= 3  # woken by the event, not a busy loop
    t0 = time.monotonic()
    assert kit.poll(lambda: [], login="l1", timeout=0.4, step=0.1) == []
    assert 0.35 <= time.monotonic() - t0 < 0.4 + SLACK
    # An event of another login does not wake it; ``wake`` may widen what does.
    assert kit.poll(lambda: "x", login="l1") == "x"
