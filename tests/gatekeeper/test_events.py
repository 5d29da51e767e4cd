"""The evidence log: redaction, filters, event-driven waits with clear timeouts."""
from __future__ import annotations

import asyncio
import base64
import os

import pytest

from conformance.gatekeeper.events import EventLog
from conformance.redact import redact_event as redact

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"


def test_redact_tokens_keys_and_secret_fields():
    key, digest = os.urandom(32), os.urandom(32)
    out = redact({"note": f"Bearer {JWT}", "hex": key.hex(), "b64": base64.urlsafe_b64encode(key).decode().rstrip("="),
                  "media_key": "anything", "raw": key, "file_enc_sha256": digest, "nested": [{"token": "t"}],
                  "plain": "hello", "n": 3})
    assert JWT not in str(out) and key.hex() not in str(out)
    assert out["note"].startswith("Bearer <redacted:jwt:")
    assert out["hex"].startswith("<redacted:key:") and out["b64"].startswith("<redacted:key:")
    assert out["media_key"] == "<redacted:media_key>" and out["nested"] == [{"token": "<redacted:token>"}]
    assert out["raw"] == {"len": 32, "sha256": out["raw"]["sha256"]}
    assert out["file_enc_sha256"] == digest.hex()  # digests are evidence, not secrets
    assert out["plain"] == "hello" and out["n"] == 3


def test_short_base64_is_left_alone():
    assert redact("abc_DEF-123") == "abc_DEF-123"


def test_filters_and_since():
    log = EventLog()
    log.append("a", "l1", conn="c1")
    mark = log.mark()
    log.append("b", "l1", conn="c2")
    log.append("a", "l2", conn="c2")
    assert [e["kind"] for e in log.events(login="l1")] == ["a", "b"]
    assert [e["login"] for e in log.events(kind="a")] == ["l1", "l2"]
    assert [e["kind"] for e in log.events(conn="c2")] == ["b", "a"]
    assert [e["kind"] for e in log.events(since=mark)] == ["b", "a"]
    assert all(e["t"] >= 0 for e in log.dump())


def test_bounded():
    log = EventLog(max_events=3)
    for i in range(5):
        log.append("x", None, i=i)
    assert [e["detail"]["i"] for e in log.events()] == [2, 3, 4] and len(log) == 5


@pytest.mark.anyio
async def test_wait_for_is_event_driven_and_times_out_clearly():
    log = EventLog()
    waiter = asyncio.ensure_future(log.wait_for(kind="push_sent", login="x", timeout=5))
    await asyncio.sleep(0)  # let the waiter register; no timing involved
    log.append("other", "x")
    log.append("push_sent", "x", status=200)
    ev = await waiter
    assert ev["detail"]["status"] == 200
    with pytest.raises(TimeoutError, match="kind='nothing'"):
        await log.wait_for(kind="nothing", timeout=0.05)


@pytest.fixture
def anyio_backend():
    return "asyncio"
