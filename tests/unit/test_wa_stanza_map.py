"""The wa stanza mapping (reference_impl/wa/stanza_map.py): every stanza kind survives
stanza -> node -> bytes -> node -> stanza, and the JID-form rule refuses a bare @interop pair."""
from __future__ import annotations

import pytest

from reference_impl.wa.binary_xml import JID, Node, decode, encode
from reference_impl.wa.stanza_map import StanzaMapError, from_node, jid_user, to_node, user_jid
from reference_impl.wire import stanzas_pb2 as pb

P = "1-00012345678901@interop"
G = "g:4915112345678"
STANZAS = [pb.Stanza(id="m1", message=pb.Message(recipient=G, sender=P, type=1, ciphertext=b"\x33abc", timestamp_ms=17, retry_count=2)),
   pb.Stanza(id="m2", message=pb.Message(sender=P, type=3, ciphertext=b"\x33x", group_id="grp.abc", timestamp_ms=1)),
   pb.Stanza(id="m3", message=pb.Message(recipient=P, sender=G, type=3, ciphertext=b"\x33x", group_id="grp.abc")),
   pb.Stanza(id="r1", receipt=pb.Receipt(type=3, message_ids=["a","b"], recipient=G, sender=P, group_id="grp.x", timestamp_ms=5, registration_id=77, retry_count=1)),
   pb.Stanza(id="r2", receipt=pb.Receipt(type=1, message_ids=["a"], recipient=G)),
   pb.Stanza(id="a", ack=pb.Ack(timestamp_ms=9)), pb.Stanza(id="a", ack=pb.Ack()),
   pb.Stanza(id="p", ping=pb.Ping()), pb.Stanza(id="p", pong=pb.Pong()),
   pb.Stanza(id="k", key_fetch=pb.KeyFetchRequest(user=G)),
   pb.Stanza(id="k", key_bundle=pb.KeyBundle(user=G, identity_key=b"\x05"+b"i"*32, registration_id=5, signed_pre_key=pb.SignedPreKey(id=3, public_key=b"\x05"+b"s"*32, signature=b"g"*64), one_time_pre_key=pb.OneTimePreKey(id=9, public_key=b"\x05"+b"o"*32))),
   pb.Stanza(id="k", key_bundle=pb.KeyBundle(user=G, identity_key=b"\x05"+b"i"*32, registration_id=5, signed_pre_key=pb.SignedPreKey(id=3, public_key=b"\x05"+b"s"*32, signature=b"g"*64))),
   pb.Stanza(id="u", pre_key_upload=pb.PreKeyUpload(one_time_pre_keys=[pb.OneTimePreKey(id=1, public_key=b"\x05"+b"a"*32)], signed_pre_key=pb.SignedPreKey(id=3, public_key=b"\x05"+b"s"*32, signature=b"g"*64))),
   pb.Stanza(id="u", pre_key_upload=pb.PreKeyUpload(one_time_pre_keys=[pb.OneTimePreKey(id=1, public_key=b"\x05"+b"a"*32)])),
   pb.Stanza(id="b", blocklist_get=pb.BlocklistGet()), pb.Stanza(id="b", blocklist_set=pb.BlocklistSet(add=[G], remove=["g:1"])),
   pb.Stanza(id="b", blocklist=pb.Blocklist(users=[G])), pb.Stanza(id="b", blocklist=pb.Blocklist()),
   pb.Stanza(id="d", deletion_request=pb.DeletionRequest(reason=1)), pb.Stanza(id="d", deletion_request=pb.DeletionRequest()),
   pb.Stanza(id="r", reachability_ping=pb.ReachabilityPing(recipient="+4915112345678")),
   pb.Stanza(id="n", notification=pb.Notification(identity_change=pb.IdentityChange(user=G, identity_key=b"\x05"+b"k"*32))),
   pb.Stanza(id="n", notification=pb.Notification(low_pre_keys=pb.LowPreKeys(count=5))),
   pb.Stanza(id="n", notification=pb.Notification(low_pre_keys=pb.LowPreKeys())),
   pb.Stanza(id="n", notification=pb.Notification(consent_revoked=pb.ConsentRevoked(user=G))),
   pb.Stanza(id="n", notification=pb.Notification(consent_granted=pb.ConsentGranted(user=G))),
   pb.Stanza(id="n", notification=pb.Notification(group_membership=pb.GroupMembership(group_id="grp.1", participants=[P,G], added=[G]))),
   pb.Stanza(id="n", notification=pb.Notification()),
   pb.Stanza(id="e", error=pb.Error(code=2, detail="slow", retry_after_ms=500, user=G)), pb.Stanza(error=pb.Error(code=3)),
   pb.Stanza(id="x"),
]


@pytest.mark.parametrize("stanza", STANZAS, ids=lambda s: f"{s.WhichOneof('body')}-{s.id}")
def test_every_stanza_kind_round_trips_through_binary_xml(stanza: pb.Stanza) -> None:
    assert from_node(decode(encode(to_node(stanza)))) == stanza


def test_user_ids_travel_as_jids() -> None:
    assert user_jid(P) == JID("00012345678901", "interop", 0, 1)
    assert user_jid(G) == JID("4915112345678", "s.whatsapp.net")
    assert user_jid("+4915112345678") == "+4915112345678"
    assert jid_user(user_jid(P)) == P and jid_user(user_jid(G)) == G


def test_interop_jid_without_integrator_is_refused_on_chn_034() -> None:
    with pytest.raises(StanzaMapError) as exc:
        from_node(Node("message", {"from": JID("1", "interop")}, [Node("enc", {"v": "2", "type": "msg"}, b"x")]))
    assert exc.value.requirement == "CHN-034"


def test_unknown_tag_is_a_stanza_without_body() -> None:
    assert from_node(Node("presence", {"id": "x"})).WhichOneof("body") is None


def test_chatstate_node_maps_where_the_stanza_exists() -> None:
    """``<chatstate><composing/></chatstate>``: a typing indicator where stanzas.proto has
    ``chatstate`` (issue 12), else a stanza without body like any unknown tag."""
    node = Node("chatstate", {"id": "c1", "to": JID("4915112345678", "s.whatsapp.net"),
                              "from": JID("00012345678901", "interop", 0, 1)}, [Node("composing")])
    st = from_node(decode(encode(node)))
    if "chatstate" not in pb.Stanza.DESCRIPTOR.fields_by_name:
        assert st.WhichOneof("body") is None
        return
    assert st.WhichOneof("body") == "chatstate"
    assert (st.chatstate.recipient, st.chatstate.sender, st.chatstate.state) == (G, P, 1)
    assert to_node(st) == node
