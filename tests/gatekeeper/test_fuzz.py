"""Hostile input: the frame, stanza and form parsers only ever raise their own typed errors,
and a connection sending garbage is closed while the simulator keeps serving the others."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.gatekeeper.enlistment import EnlistmentRejected, parse_form
from conformance.redact import redact_event as redact
from conformance.gatekeeper.stanzas import FrameError, describe, parse_stanza
from reference_impl.wire import stanzas_pb2 as pb

_stanza_bytes = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda s: s.SerializeToString(), st.builds(
        pb.Stanza, id=st.text(max_size=80),
        message=st.builds(pb.Message, recipient=st.text(max_size=20), ciphertext=st.binary(max_size=64),
                          type=st.integers(0, 2**31 - 1))).map(lambda s: s)),
    st.binary(max_size=64).map(lambda b: b"\x0a\x02id" + b),
)


@settings(max_examples=400, deadline=None)
@given(_stanza_bytes)
def test_parse_stanza_never_raises_anything_else(data):
    try:
        stanza = parse_stanza(data)
    except FrameError as exc:
        assert exc.code == pb.ERROR_CODE_MALFORMED
        return
    assert stanza.WhichOneof("body") is not None
    describe(stanza, len(data))  # the evidence summary copes with whatever parsed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.sampled_from(["application/x-www-form-urlencoded", "text/plain", ""]))
def test_parse_form_never_raises_anything_else(body, ctype):
    with pytest.raises(EnlistmentRejected):
        parse_form(body, ctype)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.one_of(st.text(max_size=80), st.binary(max_size=40), st.integers(), st.none()),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=20))
def test_redact_is_total(value):
    redact({"detail": value})


@pytest.mark.anyio
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=4),
       encrypt=st.booleans())
async def test_garbage_after_handshake_closes_only_that_connection(gk, make_client, frames, encrypt):
    healthy = gk.__dict__.setdefault("_healthy_client", None) or await make_client("healthy@provider.test")
    gk.__dict__["_healthy_client"] = healthy
    c = await make_client(f"fuzz{gk.log.mark()}@provider.test")
    for f in frames:
        if c.closed.is_set():
            break
        try:
            await c.ws.send(c.transport.encrypt(f) if encrypt else f)
        except Exception:  # noqa: BLE001 - the gatekeeper may have closed already
            break
    # whatever the frames did, the healthy client is still served
    assert (await healthy.request(pb.Stanza(ping=pb.Ping()))).WhichOneof("body") == "pong"
    await c.close()


@pytest.mark.anyio
async def test_garbage_before_handshake_leaves_others_served(gk, make_client):
    from websockets.asyncio.client import connect
    healthy = await make_client("healthy@provider.test")
    cfg = gk.config_for_provider()
    for junk in (b"", b"\x00" * 31, b"\xff" * 200, b"\x00" * 70000):
        ws = await connect(cfg["chat_url"], subprotocols=["interop.v1"], open_timeout=5, max_size=None)
        try:
            await ws.send(junk)
            await asyncio.wait_for(ws.wait_closed(), 5)
        finally:
            await ws.close()
        assert ws.close_code in (1002, 1009)
    assert (await healthy.request(pb.Stanza(ping=pb.Ping()))).WhichOneof("body") == "pong"
