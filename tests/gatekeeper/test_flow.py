"""End to end over loopback: enlist, connect, pre-keys, messages both ways, offline and push."""
from __future__ import annotations

import jwt
import pytest

from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio


async def test_vertical_slice(gk, make_client, provider):
    bob = await gk.create_user("bob")
    alice = await make_client(pre_keys=60)
    assert gk.accounts[alice.login].sub == "alice@provider.test"
    assert len(gk.accounts[alice.login].one_time) == 60

    # provider -> G user
    ack = await alice.send_text(bob.id, "hello bob")
    assert ack.WhichOneof("body") == "ack" and ack.ack.timestamp_ms > 0
    item = await bob.next_message(timeout=5)
    assert item.content.conversation == "hello bob" and item.type == "pkmsg"
    assert 1 <= item.padding_length <= 15
    receipt = await alice.next_inbound("receipt")
    assert receipt.receipt.type == pb.RECEIPT_TYPE_DELIVERY
    assert list(receipt.receipt.message_ids) == [item.message_id]
    assert receipt.receipt.sender == bob.id

    # G user -> provider, on the session the provider started
    mid = bob.send_text(alice.login, "hi alice")
    st = await alice.next_inbound("message")
    assert st.id == mid and alice.decrypt(st).conversation == "hi alice"
    await gk.log.wait_for(kind="message_delivered", login=alice.login, id=mid, timeout=5)

    # offline: mailbox + push, delivered in order on reconnect
    await alice.close()
    await gk.log.wait_for(kind="disconnected", login=alice.login, timeout=5)
    ids = [bob.send_text(alice.login, f"offline {i}") for i in range(3)]
    push = await provider.wait_push(1)
    assert push["body"] == {"to": "alice@provider.test"}
    # Shaped like the framework's sample push token (S2 §3.2.2): RS256, iss, aud, iat, exp (1 h).
    assert isinstance(push["verified"], dict) and push["verified"]["iss"] == "WHATSAPP"
    assert push["verified"]["exp"] - push["verified"]["iat"] == 3600
    assert set(push["verified"]) == {"iss", "aud", "iat", "exp"}
    assert jwt.get_unverified_header(push["token"]) == {"alg": "RS256", "kid": gk.keys.current.kid, "typ": "JWT"}
    ev = await gk.log.wait_for(kind="push_sent", login=alice.login, timeout=5)
    assert ev["detail"]["status"] == 200 and ev["detail"]["body_length"] == 0
    assert gk.mailbox.count(alice.login) == 3

    assert await alice.connect() is None
    got = [await alice.next_inbound("message") for _ in ids]
    assert [s.id for s in got] == ids
    assert [alice.decrypt(s).conversation for s in got] == [f"offline {i}" for i in range(3)]
    for mid in ids:
        await gk.log.wait_for(kind="message_delivered", id=mid, timeout=5)
    assert gk.mailbox.count(alice.login) == 0
