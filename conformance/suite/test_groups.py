"""Groups (spec §10): sender keys, group messages, membership changes, retries and receipts
(GRP-001..GRP-008).

Approach: every check builds a fresh group of one provider user (driven through the harness)
and simulated G users (``SimUser``, real sender-key parties) with ``gk.create_group`` and
``gk.change_group``, and waits until the provider's client acknowledged each
``group_membership`` notification before acting.
- What the client sends is judged where it lands: the G users decrypt the pairwise sender key
  distribution messages and the ``skmsg`` group messages themselves (``user_message`` and
  ``decrypt_failed`` events, in delivery order), and the simulator logs every stanza and
  receipt the client sends.
- What the client must accept is crafted on the G side with the sender-key primitives of the
  reference implementation: messages at chosen chain iterations (out of order, too far
  ahead), with a broken signature, or under a key the client was never given; acceptance is
  read from the harness inbox, with a later valid message as the positive marker for
  "rejected".
A client that does not implement groups fails these checks by what it does (or does not do);
a refused harness send fails fast through the harness ``send_failed`` event.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.gatekeeper import Group, InboxItem, SimUser
from conformance.gatekeeper.stanzas import fresh_id
from conformance.harness_client import HarnessClient, HarnessError
from conformance.verdicts import fail, not_tested
from reference_impl.signal import sender_keys, xeddsa
from reference_impl.signal.crypto import aes_cbc_encrypt, hmac_sha256
from reference_impl.signal.errors import SignalError
from reference_impl.signal.padding import pad
from reference_impl.signal.wire import SenderKeyDistributionMessage, SenderKeyMessage
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

from .kit import Kit, ProviderUser

requirement = pytest.mark.requirement
#: Part of the verdict rests on the provider harness' word (inbox, events) alone.
harness_attested = pytest.mark.harness_attested

AREA = "groups"
MAX_SKIP = 2000


# -- groups and membership ----------------------------------------------------------------------
def _await_membership_ack(kit: Kit, user: ProviderUser, mark: int, what: str) -> None:
    """The client acknowledged the group_membership notification queued after ``mark``."""
    queued = kit.wait_event(lambda e: e["detail"].get("type") == "notification", kind="queued",
                            login=user.login, since=mark, area=AREA)
    try:
        kit.wait_event(kind="acked", login=user.login, id=queued["detail"]["id"], since=mark,
            area=AREA)
    except TimeoutError:
        fail(f"the client acknowledges the group_membership notification ({what})",
             f"no ack within {kit.timeout(AREA)} s")


def _group(kit: Kit, user: ProviderUser, owner: SimUser, others: list[SimUser]) -> Group:
    """A new group of ``owner``, the provider user and ``others``."""
    mark = kit.mark()
    group = kit.call(kit.gk.create_group, owner, [user.login] + [o.id for o in others], area=AREA)
    _await_membership_ack(kit, user, mark, "group created")
    return group


def _change(kit: Kit, user: ProviderUser, group: Group, *, add: list[SimUser] = (),  # type: ignore[assignment]
            remove: list[SimUser] = ()) -> None:  # type: ignore[assignment]
    mark = kit.mark()
    kit.call(lambda: kit.gk.change_group(group, add=[a.id for a in add], remove=[r.id for r in remove]),
             area=AREA)
    _await_membership_ack(kit, user, mark, "members " + ("added" if add else "removed"))


# -- what G users received from the provider user ---------------------------------------------------
@dataclass
class Received:
    seq: int
    item: InboxItem


def _received(kit: Kit, g: SimUser, sender: str, since: int) -> list[Received]:
    """Messages ``g`` decrypted from ``sender`` since ``since``, in delivery order."""
    def collect() -> list[Received]:
        out = []
        for e in kit.gk.log.events(since=since, kind="user_message", user=g.id):
            item = next((i for i in reversed(g.inbox) if i.message_id == e["detail"]["id"]), None)
            if item is not None and item.sender == sender:
                out.append(Received(e["seq"], item))
        return out
    return kit.call(collect, area=AREA)


def _skds(received: list[Received], group_id: str) -> list[Received]:
    return [r for r in received if r.item.content.HasField("sender_key_distribution")
            and r.item.content.sender_key_distribution.group_id == group_id]


def _distribution(r: Received) -> SenderKeyDistributionMessage | None:
    """The distribution message, or None when it does not parse (GRP-001)."""
    try:
        return SenderKeyDistributionMessage.parse(r.item.content.sender_key_distribution.distribution_message)
    except SignalError:
        return None


def _failures(kit: Kit, g: SimUser, since: int, message_id: str) -> list[dict[str, Any]]:
    return kit.events(since=since, kind="decrypt_failed", user=g.id, id=message_id)


def _send_failed(harness: HarnessClient, user: ProviderUser, message_id: str) -> dict[str, Any] | None:
    return next((e for e in harness.events(user.handle)
                 if e.get("type") == "send_failed" and e.get("message_id") == message_id), None)


def _harness_send(kit: Kit, harness: HarnessClient, user: ProviderUser, group: Group, text: str) -> str:
    try:
        return harness.send_text(user.handle, group.group_id, text)
    except HarnessError as exc:
        if exc.status in (409, 422, 501, 502):
            fail(f"the client sends a text to the group {group.group_id}", f"the harness refused: {exc}")
        raise


def _await_decrypted(kit: Kit, harness: HarnessClient, user: ProviderUser, message_id: str,
                     members: list[SimUser], since: int, what: str, *, precondition: str = "") -> None:
    """Until every member decrypted ``message_id`` (any type); fails fast when the harness
    reports the send as failed, or after the area timeout. When the message is only the
    ``precondition`` of the check (a requirement named there), its absence is NOT_TESTED."""
    deadline = time.monotonic() + kit.timeout(AREA)
    while True:
        mark = kit.mark()
        got = {m.id for m in members if kit.events(since=since, kind="user_message", user=m.id, id=message_id)}
        if len(got) == len(members):
            return
        failed = _send_failed(harness, user, message_id)
        left = deadline - time.monotonic()
        if failed is not None or left <= 0:
            missing = [m.id for m in members if m.id not in got]
            sent = [f"{e['detail'].get('type')}({e['detail'].get('enc') or e['detail'].get('user') or ''})"
                    for e in kit.events(since=since, kind="stanza_received", login=user.login)
                    if e["detail"].get("type") not in ("ack", "pong")][:12]
            undecryptable = [f"{m.id}: {f['detail'].get('error')}" for m in members
                             for f in _failures(kit, m, since, message_id)][:4]
            observed = (f"not by {missing}; "
                        + (f"the client reported send_failed ({failed.get('reason')}); "
                           if failed else f"nothing within {kit.timeout(AREA)} s; ")
                        + f"the client sent {sent or 'nothing'}"
                        + (f"; decryption failures: {undecryptable}" if undecryptable else ""))
            if precondition:
                not_tested(f"precondition ({precondition}) not met: {what} not decrypted by every "
                           f"member: {observed}")
            fail(f"{what}: message {message_id} decrypted by every member", observed)
        try:
            kit.wait_event(lambda e: e["kind"] in ("user_message", "decrypt_failed"), since=mark,
                           timeout=min(0.5, left))
        except TimeoutError:
            pass


# -- crafted group messages from G users --------------------------------------------------------
def _own_state(g: SimUser, group: Group) -> sender_keys.SenderKeyState:
    rec = g.party.store.sender_keys.get((group.group_id, g.id))
    if not isinstance(rec, sender_keys.SenderKeyRecord) or not rec.states:
        g.party.group_distribution(group.group_id)  # creates the sending chain
        rec = g.party.store.sender_keys[(group.group_id, g.id)]
    assert isinstance(rec, sender_keys.SenderKeyRecord)
    return rec.states[0]


def _skmsg_at(g: SimUser, group: Group, iteration: int, text: str, *, bad_signature: bool = False) -> bytes:
    """A SenderKeyMessage of ``g`` at ``iteration`` (at or after its chain's current one),
    built without moving the chain."""
    state = _own_state(g, group)
    if iteration < state.iteration:
        raise ValueError("iteration behind the chain")
    ck = state.chain_key
    for _ in range(iteration - state.iteration):
        ck = hmac_sha256(ck, b"\x02")
    iv, key = sender_keys.group_message_keys(ck)
    padded = pad(cpb.Message(conversation=text).SerializeToString(), g.party.rng)
    body = SenderKeyMessage.encode_body(state.key_id, iteration, aes_cbc_encrypt(key, iv, padded))
    assert state.signing_private is not None
    sig = bytearray(xeddsa.sign(state.signing_private, body, g.party.rng))
    if bad_signature:
        sig[10] ^= 0x01
    return body + bytes(sig)


def _fan_out(kit: Kit, g: SimUser, group: Group, body: bytes, note: str) -> str:
    """Route a group message of ``g`` as G does (one copy to each other member)."""
    mid = fresh_id("gm")
    stanza = pb.Stanza(id=mid, message=pb.Message(sender=g.id, type=pb.ENC_TYPE_SKMSG, ciphertext=body,
                                                  group_id=group.group_id, timestamp_ms=kit.gk.now_ms()))
    kit.gk.log.append("user_sent", None, user=g.id, id=mid, content="conversation", enc="skmsg",
                      group_id=group.group_id, crafted=note)
    kit.gk.fan_out(group, stanza)
    return mid


def _send_crafted(kit: Kit, g: SimUser, group: Group, text: str, *, iteration: int | None = None,
                  bad_signature: bool = False, note: str = "") -> str:
    """A group text of ``g``: at the chain's next iteration (which the chain then passes), or at
    ``iteration`` (the chain stays where it is)."""
    def send() -> str:
        state = _own_state(g, group)
        it = state.iteration if iteration is None else iteration
        body = _skmsg_at(g, group, it, text, bad_signature=bad_signature)
        if iteration is None:
            state.chain_key, state.iteration = hmac_sha256(state.chain_key, b"\x02"), state.iteration + 1
        return _fan_out(kit, g, group, body, note or f"iteration {it}")
    return kit.call(send, area=AREA)


def _g_group_text(kit: Kit, g: SimUser, group: Group, text: str) -> str:
    """``g`` sends a group text as a G user does (distributing its sender key first, once)."""
    return kit.call(g.send_group_text, group, text, area=AREA)


def _chain_iteration(kit: Kit, g: SimUser, group: Group) -> int:
    return kit.call(lambda: _own_state(g, group).iteration, area=AREA)


# -- what the provider user sees --------------------------------------------------------------------
def _group_inbox(kit: Kit, harness: HarnessClient, user: ProviderUser, wanted: list[str],
                 settled: Callable[[dict[str, dict]], bool] | None = None) -> dict[str, dict]:
    """The user's inbox by message id, once every id in ``wanted`` is there (or time is up)."""
    def read() -> dict[str, dict]:
        return {i["message_id"]: i for i in harness.inbox(user.handle)}
    return kit.poll(read, settled or (lambda box: all(w in box for w in wanted)),
                    login=user.login, area=AREA)


def _acked(kit: Kit, user: ProviderUser, message_id: str, since: int) -> None:
    """The client acknowledged the message (it processed it)."""
    try:
        kit.wait_event(kind="message_delivered", login=user.login, id=message_id, since=since,
            area=AREA)
    except TimeoutError:
        fail(f"the client acknowledges group message {message_id}", f"no ack within {kit.timeout(AREA)} s")


def _surfaced_problems(box: dict[str, dict], group: Group, expected: dict[str, tuple[str, str]], *,
                       in_group: bool = True) -> list[str]:
    """``expected``: message id -> (sender, text) that must be shown (``in_group``: in the
    group's conversation, GRP-003; otherwise only with its text, GRP-004)."""
    out = []
    for mid, (sender, text) in expected.items():
        item = box.get(mid)
        if item is None:
            out.append(f"{text!r} from {sender} not surfaced")
        elif item.get("text") != text or (in_group and (item.get("peer") != group.group_id
                                                         or item.get("sender") != sender)):
            out.append(f"{text!r} surfaced as peer {item.get('peer')!r}, sender {item.get('sender')!r}, "
                       f"text {item.get('text')!r}")
    return out


# -- GRP-001 -------------------------------------------------------------------------------------
@harness_attested
@requirement("GRP-001")
def test_sender_key_goes_pairwise_to_current_participants_before_the_first_message(
        kit: Kit, harness, new_user, g_user):
    user, a, b, gone = new_user(), g_user(), g_user(), g_user()
    start = kit.mark()
    group = _group(kit, user, a, [b, gone])
    _change(kit, user, group, remove=[gone])
    mark = kit.mark()
    mid = _harness_send(kit, harness, user, group, "first group message")
    _await_decrypted(kit, harness, user, mid, [a, b], mark, "first group message")
    problems = []
    for m in (a, b):
        got = _received(kit, m, user.login, mark)
        skds = _skds(got, group.group_id)
        first = next(r for r in got if r.item.message_id == mid)
        if not [r for r in skds if r.seq < first.seq]:
            problems.append(f"{m.id}: no sender key distribution before the group message")
        elif any(r.item.type not in ("pkmsg", "msg") for r in skds):
            problems.append(f"{m.id}: sender key distribution not on a pairwise session")
        if _failures(kit, m, mark, mid):
            problems.append(f"{m.id}: could not decrypt the group message when it first arrived")
    leaked = _skds(_received(kit, gone, user.login, start), group.group_id)
    if leaked:
        problems.append(f"{gone.id}, removed before the first message, got the sender key")
    bad = kit.events(since=mark, kind="violation", requirement="GRP-001")
    if bad:
        problems.append(f"unusable distribution message: {bad[0]['detail'].get('detail')}")
    if problems:
        fail("0x33 || SenderKeyDistributionMessage, as sender_key_distribution with the group_id over a "
             "pairwise session, to every current participant and only to them, before the first group "
             "message", "; ".join(problems))


# -- GRP-002 -------------------------------------------------------------------------------------
@harness_attested
@requirement("GRP-002")
def test_group_messages_are_one_skmsg_with_group_id_and_no_recipient(kit: Kit, harness, new_user, g_user):
    user, a, b = new_user(), g_user(), g_user()
    group = _group(kit, user, a, [b])
    problems = []
    for n, text in enumerate(("hello group", "second group message")):
        mark = kit.mark()
        mid = _harness_send(kit, harness, user, group, text)
        _await_decrypted(kit, harness, user, mid, [a, b], mark, f"group message {n + 1}")
        stanzas = [e["detail"] for e in kit.events(since=mark, kind="stanza_received", login=user.login)
                   if e["detail"].get("type") == "message"]
        copies = [s for s in stanzas if s.get("id") == mid and not s.get("retry_count")]
        if len(copies) != 1:
            problems.append(f"{text!r}: {len(copies)} message stanzas under its id, expected 1")
        for s in copies:
            if s.get("enc") != "ENC_TYPE_SKMSG" or s.get("group_id") != group.group_id or s.get("recipient"):
                problems.append(f"{text!r}: type {s.get('enc')}, group_id {s.get('group_id')!r}, "
                                f"recipient {s.get('recipient')!r}")
        for m in (a, b):
            got = [r for r in _received(kit, m, user.login, mark) if not r.item.retry_count]
            first = next((r for r in got if r.item.message_id == mid), None)
            # Not decryptable for want of the sender key is GRP-001's business; any other
            # failure (signature, cipher, layout) is this requirement's.
            broken = [f["detail"].get("error") for f in _failures(kit, m, mark, mid)
                      if f["detail"].get("error") != "NoSessionError"]
            if broken:
                problems.append(f"{text!r}: {m.id} cannot decrypt the group message ({broken[0]})")
            elif first is not None and first.item.type == "skmsg" and _text(first.item) != text:
                problems.append(f"{text!r}: {m.id} decrypted {_text(first.item)!r}")
            if [r for r in got if r.item.type != "skmsg" and _text(r.item) == text]:
                problems.append(f"{text!r}: also sent pairwise to {m.id}")
        rejected = kit.events(since=mark, kind="rejected", login=user.login, requirement="GRP-002")
        if rejected:
            problems.append(f"G refused a message: {rejected[0]['detail'].get('detail')}")
    if problems:
        fail("each group message sent once as a v3 SenderKeyMessage (skmsg) with group_id and no "
             "recipient, decryptable and signed under the sender key", "; ".join(problems))


def _text(item: InboxItem) -> str | None:
    kind = item.content.WhichOneof("content")
    if kind == "conversation":
        return item.content.conversation
    if kind == "extended_text":
        return item.content.extended_text.text
    return None


# -- GRP-003 -------------------------------------------------------------------------------------
@harness_attested
@requirement("GRP-003")
def test_group_messages_are_decrypted_and_bad_signatures_rejected(kit: Kit, harness, new_user, g_user):
    user, a, b = new_user(), g_user(), g_user()
    group = _group(kit, user, a, [b])
    mark = kit.mark()
    expected = {_g_group_text(kit, a, group, "from a, 1"): (a.id, "from a, 1"),
                _g_group_text(kit, b, group, "from b, 1"): (b.id, "from b, 1")}
    forged = _send_crafted(kit, a, group, "forged: not a's signature", bad_signature=True,
                           note="signature altered")
    expected[_send_crafted(kit, a, group, "from a, 2")] = (a.id, "from a, 2")
    expected[_g_group_text(kit, b, group, "from b, 2")] = (b.id, "from b, 2")
    for mid in list(expected) + [forged]:
        _acked(kit, user, mid, mark)
    box = _group_inbox(kit, harness, user, list(expected))
    problems = _surfaced_problems(box, group, expected)
    if forged in box:
        problems.append("a group message whose signature does not verify was surfaced")
    if problems:
        fail("group messages from members with a distributed sender key decrypted and surfaced in the "
             "group; one with a bad signature rejected", "; ".join(problems))


# -- GRP-004 -------------------------------------------------------------------------------------
@harness_attested
@requirement("GRP-004")
def test_out_of_order_group_messages_within_2000_iterations_are_decrypted(kit: Kit, harness, new_user, g_user):
    user, a = new_user(), g_user()
    group = _group(kit, user, a, [])
    mark = kit.mark()
    expected = {_g_group_text(kit, a, group, "in order"): (a.id, "in order")}
    kit.call(kit.gk.script.reorder_next, user.login, 3, area=AREA)
    for n in (1, 2, 3):
        expected[_send_crafted(kit, a, group, f"reordered {n}")] = (a.id, f"reordered {n}")
    s = _chain_iteration(kit, a, group)  # what the client expects next from a
    expected[_send_crafted(kit, a, group, "skipping 2000", iteration=s + MAX_SKIP)] = (a.id, "skipping 2000")
    expected[_send_crafted(kit, a, group, "one left behind", iteration=s)] = (a.id, "one left behind")
    for mid in expected:
        _acked(kit, user, mid, mark)
    box = _group_inbox(kit, harness, user, list(expected))
    problems = _surfaced_problems(box, group, expected, in_group=False)
    if problems:
        fail(f"group messages decrypted when they arrive out of order within {MAX_SKIP} iterations",
             "; ".join(problems))


@harness_attested
@requirement("GRP-004")
def test_group_message_skipping_more_than_2000_iterations_is_rejected_without_state_change(
        kit: Kit, harness, new_user, g_user):
    user, a = new_user(), g_user()
    group = _group(kit, user, a, [])
    mark = kit.mark()
    expected = {_g_group_text(kit, a, group, "before"): (a.id, "before")}
    s = _chain_iteration(kit, a, group)
    too_far = _send_crafted(kit, a, group, "skipping 2001", iteration=s + MAX_SKIP + 1)
    # Unchanged state: the next iteration, and the window counted from it, still work.
    expected[_send_crafted(kit, a, group, "next in order")] = (a.id, "next in order")
    expected[_send_crafted(kit, a, group, "skipping 2000 after it", iteration=s + 1 + MAX_SKIP)] = \
        (a.id, "skipping 2000 after it")
    expected[_send_crafted(kit, a, group, "skipped one", iteration=s + 1)] = (a.id, "skipped one")
    for mid in [too_far, *expected]:
        _acked(kit, user, mid, mark)
    box = _group_inbox(kit, harness, user, list(expected))
    problems = _surfaced_problems(box, group, expected, in_group=False)
    if too_far in box:
        problems.append(f"a message {MAX_SKIP + 1} iterations ahead was surfaced")
    if problems:
        fail(f"a message that skips more than {MAX_SKIP} iterations rejected, the chain unchanged",
             "; ".join(problems))


# -- GRP-005 -------------------------------------------------------------------------------------
def _first_group_message(kit: Kit, harness: HarnessClient, user: ProviderUser, group: Group,
                         members: list[SimUser]) -> SenderKeyDistributionMessage:
    """The user's first group message; the sender key it distributed."""
    mark = kit.mark()
    mid = _harness_send(kit, harness, user, group, "before the change")
    _await_decrypted(kit, harness, user, mid, members, mark, "group message before the change",
                     precondition="GRP-001, GRP-002")
    skds = _skds(_received(kit, members[0], user.login, mark), group.group_id)
    dist = _distribution(skds[-1]) if skds else None
    if dist is None:
        not_tested("precondition (GRP-001) not met: no usable sender key distribution before the "
                   "first group message")
    assert dist is not None
    return dist


@harness_attested
@requirement("GRP-005")
def test_removal_makes_the_client_distribute_a_new_sender_key_to_the_rest(kit: Kit, harness, new_user, g_user):
    user, a, b, gone = new_user(), g_user(), g_user(), g_user()
    group = _group(kit, user, a, [b, gone])
    old = _first_group_message(kit, harness, user, group, [a, b, gone])
    _change(kit, user, group, remove=[gone])
    mark = kit.mark()
    mid = _harness_send(kit, harness, user, group, "after the removal")
    _await_decrypted(kit, harness, user, mid, [a, b], mark, "group message after the removal")
    problems = []
    for m in (a, b):
        got = _received(kit, m, user.login, mark)
        msg = next(r for r in got if r.item.message_id == mid)
        new = [r for r in _skds(got, group.group_id) if r.seq < msg.seq]
        if not new:
            problems.append(f"{m.id}: no new sender key before the next group message")
            continue
        dist = _distribution(new[-1])
        if dist is None:
            problems.append(f"{m.id}: the new sender key distribution message does not parse")
            continue
        if dist.signing_key.serialize() == old.signing_key.serialize():
            problems.append(f"{m.id}: the distributed sender key has the old signing key")
        if msg.item.type == "skmsg" and SenderKeyMessage.parse(msg.item.ciphertext).key_id != dist.key_id:
            problems.append(f"{m.id}: the group message is not under the new sender key")
    if _skds(_received(kit, gone, user.login, mark), group.group_id):
        problems.append(f"the removed member {gone.id} got the new sender key")
    if problems:
        fail("after a removal, a new sender key distributed to the remaining participants (only) before "
             "the next group message", "; ".join(problems))


@harness_attested
@requirement("GRP-005")
def test_added_members_get_the_sender_key_before_the_next_message(kit: Kit, harness, new_user, g_user):
    user, a, added = new_user(), g_user(), g_user()
    group = _group(kit, user, a, [])
    _first_group_message(kit, harness, user, group, [a])
    _change(kit, user, group, add=[added])
    mark = kit.mark()
    mid = _harness_send(kit, harness, user, group, "after the addition")
    _await_decrypted(kit, harness, user, mid, [a, added], mark, "group message after the addition")
    got = _received(kit, added, user.login, mark)
    msg = next(r for r in got if r.item.message_id == mid)
    if not [r for r in _skds(got, group.group_id) if r.seq < msg.seq] or _failures(kit, added, mark, mid):
        fail("the added member gets the current or a new sender key before the next group message",
             f"{added.id} had no sender key when the message arrived")


# -- GRP-006 -------------------------------------------------------------------------------------
def _retry_receipt(kit: Kit, user: ProviderUser, g: SimUser, group: Group, mid: str, mark: int) -> None:
    try:
        e = kit.wait_event(lambda ev: mid in (ev["detail"].get("message_ids") or []), kind="receipt",
                           login=user.login, direction="from_provider", receipt="RECEIPT_TYPE_RETRY",
                           since=mark, area=AREA)
    except TimeoutError:
        fail(f"a retry receipt with the group_id for group message {mid}",
             f"none within {kit.timeout(AREA)} s")
    d = e["detail"]
    enlisted = kit.call(lambda: kit.gk.accounts[user.login].registration_id, area=AREA)
    problems = []
    if d.get("group_id") != group.group_id:
        problems.append(f"group_id {d.get('group_id')!r}")
    if d.get("recipient") != g.id:
        problems.append(f"recipient {d.get('recipient')!r}, the sender is {g.id}")
    if d.get("retry_count") != 1:
        problems.append(f"retry_count {d.get('retry_count')} on the first retry")
    if d.get("registration_id") != enlisted:
        problems.append(f"registration_id {d.get('registration_id')}, enlisted {enlisted}")
    if problems:
        fail("a retry receipt naming the message, with the group_id, to the sender, retry_count 1 and "
             "the client's registration id", "; ".join(problems))


@requirement("GRP-006")
def test_group_message_without_a_sender_key_gets_a_retry_receipt(kit: Kit, harness, new_user, g_user):
    user, a = new_user(), g_user()
    group = _group(kit, user, a, [])
    mark = kit.mark()
    mid = _send_crafted(kit, a, group, "no sender key given", note="sender key never distributed")
    _retry_receipt(kit, user, a, group, mid, mark)


@requirement("GRP-006")
def test_group_message_under_an_unknown_key_id_gets_a_retry_receipt(kit: Kit, harness, new_user, g_user):
    user, a = new_user(), g_user()
    group = _group(kit, user, a, [])
    mark = kit.mark()
    first = _g_group_text(kit, a, group, "under the distributed key")
    _acked(kit, user, first, mark)

    def rotate_silently() -> None:  # a new chain, never distributed to the client
        a.forget_sender_key(group.group_id, a.id)
        a.party.group_distribution(group.group_id)
    kit.call(rotate_silently, area=AREA)
    mark = kit.mark()
    mid = _send_crafted(kit, a, group, "under an unknown key id", note="undistributed sender key")
    _retry_receipt(kit, user, a, group, mid, mark)


# -- GRP-007 -------------------------------------------------------------------------------------
@harness_attested
@requirement("GRP-007")
def test_group_retry_receipt_is_answered_under_the_original_id(kit: Kit, harness, new_user, g_user):
    user, a, b = new_user(), g_user(), g_user()
    group = _group(kit, user, a, [b])
    mark = kit.mark()
    text = "please resend me"
    mid = _harness_send(kit, harness, user, group, text)
    _await_decrypted(kit, harness, user, mid, [a, b], mark, "group message", precondition="GRP-001, GRP-002")

    def lose_key_and_ask() -> None:  # a lost the client's sender key: it asks for a retry
        a.forget_sender_key(group.group_id, user.login)
        a.send_receipt(user.login, "retry", [mid], group_id=group.group_id, retry_count=1)
    mark = kit.mark()
    kit.call(lose_key_and_ask, area=AREA)
    try:
        kit.wait_event(kind="user_message", user=a.id, id=mid, since=mark, area=AREA)
    except TimeoutError:
        kinds = [f"{r.item.type}:{r.item.kind}" for r in _received(kit, a, user.login, mark)]
        failed = [f["detail"].get("error") for f in _failures(kit, a, mark, mid)]
        fail("after the retry receipt: the sender key then the group message, or the content pairwise, "
             "under the original id, decryptable by the requester",
             f"{a.id} got {kinds or 'nothing'}" + (f", could not decrypt the resend ({failed})" if failed else ""))
    got = _received(kit, a, user.login, mark)
    resend = next(r for r in got if r.item.message_id == mid)
    problems = []
    if _text(resend.item) != text:
        problems.append(f"the resend decrypts to {_text(resend.item)!r}")
    if resend.item.type == "skmsg" and not [r for r in _skds(got, group.group_id)
                                            if r.seq < resend.seq and r.item.type in ("pkmsg", "msg")]:
        problems.append("the group message was resent without a pairwise sender key distribution first")
    if problems:
        fail("the sender key over a pairwise session and then the group message, or the content "
             "pairwise, under the original message id", "; ".join(problems))


# -- GRP-008 -------------------------------------------------------------------------------------
@harness_attested
@requirement("GRP-008")
def test_receipts_for_group_messages_carry_the_group_and_the_sender(kit: Kit, harness, new_user, g_user):
    user, a, b = new_user(), g_user(), g_user()
    group = _group(kit, user, a, [b])
    mark = kit.mark()
    mid = _g_group_text(kit, a, group, "please read me")
    box = _group_inbox(kit, harness, user, [mid])
    if mid not in box:
        not_tested("precondition (GRP-003) not met: the group message was not surfaced, so it cannot "
                   "be read")
    harness.read(user.handle, group.group_id, [mid])

    def about(kind: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: (mid in (e["detail"].get("message_ids") or [])
                          and e["detail"].get("receipt") == kind)
    for kind in ("RECEIPT_TYPE_DELIVERY", "RECEIPT_TYPE_READ"):  # both are due (E2E-015)
        try:
            kit.wait_event(about(kind), kind="receipt", login=user.login, direction="from_provider",
                           since=mark, area=AREA)
        except TimeoutError:
            pass
    sent = [e["detail"] for e in kit.events(since=mark, kind="receipt", login=user.login,
                                            direction="from_provider")
            if mid in (e["detail"].get("message_ids") or [])]
    if not sent:
        not_tested("the client sent no delivery or read receipt for the group message (E2E-015)")
    problems = [f"{d.get('receipt')} with group_id {d.get('group_id')!r} and recipient {d.get('recipient')!r}"
                for d in sent if d.get("group_id") != group.group_id or d.get("recipient") != a.id]
    if problems:
        fail(f"delivery and read receipts for the group message with group_id {group.group_id!r}, "
             f"to its sender {a.id}", "; ".join(problems))


@harness_attested
@requirement("GRP-008")
def test_per_participant_receipts_for_own_group_messages_are_surfaced(kit: Kit, harness, new_user, g_user):
    user, a, b = new_user(), g_user(), g_user()
    group = _group(kit, user, a, [b])
    mark = kit.mark()
    mid = _harness_send(kit, harness, user, group, "did you get this?")
    _await_decrypted(kit, harness, user, mid, [a, b], mark, "group message",  # both answer delivery
                     precondition="GRP-001, GRP-002")
    kit.call(lambda: a.send_receipt(user.login, "read", [mid], group_id=group.group_id), area=AREA)
    wanted = {(a.id, "delivery"), (b.id, "delivery"), (a.id, "read")}

    def read() -> set[tuple[str, str]]:
        seen = set()
        for e in harness.events(user.handle):
            if e.get("type") == "receipt" and mid in (e.get("message_ids") or []):
                who = e.get("participant") or e.get("peer")
                seen.add((str(who), str(e.get("receipt"))))
        return seen
    seen = kit.poll(read, lambda s: wanted <= s, login=user.login, area=AREA)
    if not wanted <= seen:
        fail("each participant's delivery and read receipts surfaced (receipt events naming the "
             "participant)", f"missing {sorted(wanted - seen)}; surfaced {sorted(seen) or 'none'}")
