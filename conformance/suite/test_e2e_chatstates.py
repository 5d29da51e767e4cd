"""Typing indicators (spec §6.5): the ``chatstate`` stanzas the provider's client sends for its
user's typing (E2E-024) and how it surfaces G users' typing (E2E-025).

The harness reports typing as a text field would, once per keystroke; the client decides what
goes on the wire. What it sends is judged where G logs it (``stanza_received`` of type
``chatstate``, with ``recipient`` and ``state``). Negative outcomes ("nothing to the blocked
user") are proven with a later positive marker: a chatstate to an opted-in user sent after
them arrives, and G waits a short quiet period on top.

G users' typing is sent with ``SimUser.send_chatstate``; one from a user the provider's user
blocked is relayed with ``racing_block`` (it left before G applied the block), since G itself
drops such chatstates afterwards and the client's own rule could not be seen otherwise.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.harness_client import HarnessClient, HarnessError
from conformance.verdicts import fail

from .kit import Kit

requirement = pytest.mark.requirement
#: Part of the verdict rests on the provider harness' word (inbox, events) alone.
harness_attested = pytest.mark.harness_attested

AREA = "e2e"
#: E2E-024: a change of typing state goes out within 10 s, plus the spec's 2 s of slack.
CHANGE_WITHIN_S = 12.0
#: E2E-024: the same state is not repeated to the same user within this many seconds.
REPEAT_S = 10.0
#: A quiet period after a positive marker, for chatstates that must not come.
QUIET_S = 1.0
#: Keystrokes the kit reports while the user types on.
KEYSTROKES = 5
Event = dict[str, Any]


def _chatstate(login: str, recipient: str | None = None, state: str | None = None) -> Callable[[Event], bool]:
    def pred(e: Event) -> bool:
        d = e["detail"]
        return (e["kind"] == "stanza_received" and e["login"] == login and d.get("type") == "chatstate"
                and (recipient is None or d.get("recipient") == recipient)
                and (state is None or d.get("state") == state))
    pred.__name__ = f"chatstate {state or ''} from {login} to {recipient or 'anyone'}"
    return pred


def _typing(harness: HarnessClient, handle: str, peer: str, state: str) -> None:
    try:
        harness.typing(handle, peer, state)
    except HarnessError as exc:
        fail(f"the harness typing action for {peer} ({state}) accepted (202)", str(exc))


def _sent(kit: Kit, login: str, since: int, recipient: str) -> list[Event]:
    return [e for e in kit.events(since=since, kind="stanza_received", login=login)
            if _chatstate(login, recipient)(e)]


def _repeats(events: list[Event]) -> list[tuple[str, float]]:
    """Same-state chatstates less than REPEAT_S after the previous one, with no other state
    in between: (state, seconds after the previous one)."""
    out: list[tuple[str, float]] = []
    for prev, cur in zip(events, events[1:]):
        gap = (cur["t"] - prev["t"]) / 1000
        if cur["detail"]["state"] == prev["detail"]["state"] and gap < REPEAT_S:
            out.append((cur["detail"]["state"], round(gap, 2)))
    return out


@requirement("E2E-024")
def test_typing_is_sent_on_each_change_and_not_repeated_within_10_s(
    kit: Kit, harness: HarnessClient, new_user, g_user, evidence
):
    user, g = new_user(), g_user()
    mark = kit.mark()
    for state in ("composing", "paused", "composing"):
        step = kit.mark()
        for _ in range(KEYSTROKES if state == "composing" else 1):
            _typing(harness, user.handle, g.id, state)
        if kit.within(CHANGE_WITHIN_S, _chatstate(user.login, g.id, state), since=step, area=AREA) is None:
            fail(f"a {state} chatstate to {g.id} within 10 s of the user's typing change",
                 f"none within {CHANGE_WITHIN_S:g} s; chatstates seen: "
                 f"{[e['detail'].get('state') for e in _sent(kit, user.login, mark, g.id)]}")
    kit.within(QUIET_S, lambda e: False, since=kit.mark(), area=AREA)  # late repeats, if any
    sent = _sent(kit, user.login, mark, g.id)
    evidence.record("observation", chatstates=[(e["detail"]["state"], e["t"]) for e in sent])
    repeats = _repeats(sent)
    if repeats:
        fail(f"no chatstate repeating the previous state to {g.id} within 10 s "
             f"({KEYSTROKES} keystrokes per typing run)",
             f"{len(repeats)} repeats (state, seconds after the previous): {repeats[:5]}")


@requirement("E2E-024")
def test_no_typing_to_blocked_or_non_consenting_users(
    kit: Kit, harness: HarnessClient, new_user, g_user, evidence
):
    user, blocked, pinged, ok = new_user(), g_user(), g_user("not_opted_in"), g_user()
    start = kit.mark()
    try:
        harness.block(user.handle, blocked.id)
        harness.reachability_ping(user.handle, pinged.id)
    except HarnessError as exc:
        fail("the harness block and reachability-ping actions accepted", str(exc))
    kit.expect(f"the reachability ping to {pinged.id}", since=start, kind="reachability_ping",
               login=user.login, user=pinged.id, area=AREA)
    mark = kit.mark()
    _typing(harness, user.handle, blocked.id, "composing")
    _typing(harness, user.handle, pinged.id, "composing")
    _typing(harness, user.handle, ok.id, "composing")  # the marker: sent after the two above
    if kit.within(CHANGE_WITHIN_S, _chatstate(user.login, ok.id, "composing"), since=mark, area=AREA) is None:
        fail(f"a composing chatstate to the opted-in {ok.id} (the marker)",
             f"none within {CHANGE_WITHIN_S:g} s")
    kit.within(QUIET_S, lambda e: False, since=kit.mark(), area=AREA)
    for who, why in ((blocked, "whom the user blocked"), (pinged, "pinged and not yet consenting")):
        wrong = _sent(kit, user.login, mark, who.id)
        if wrong:
            fail(f"no chatstate to {who.id}, {why}",
                 f"{len(wrong)} chatstate(s): {[e['detail'].get('state') for e in wrong]}")


@harness_attested
@requirement("E2E-025")
def test_typing_from_g_users_is_surfaced_and_a_blocked_users_is_not(
    kit: Kit, harness: HarnessClient, new_user, g_user, evidence
):
    user, g, blocked = new_user(), g_user(), g_user()
    try:
        harness.block(user.handle, blocked.id)
    except HarnessError as exc:
        fail("the harness block action accepted (204)", str(exc))
    after = max((e.get("seq", 0) for e in harness.events(user.handle)), default=0)

    def typing_events() -> list[Event]:
        return [e for e in harness.events(user.handle, after) if e.get("type") == "typing"]

    for state in ("composing", "paused"):
        # The blocked user's chatstate goes first, so once g's is shown, it was handled.
        if not kit.call(blocked.send_chatstate, user.login, state, racing_block=True) \
                or not kit.call(g.send_chatstate, user.login, state):
            fail("the client online to receive typing indicators",
                 "G found no connection of the client to relay them to")
        got = kit.poll(typing_events, lambda evs: any(
            e.get("peer") == g.id and e.get("state") == state for e in evs), login=user.login,
            area=AREA, step=1.0)
        if not any(e.get("peer") == g.id and e.get("state") == state for e in got):
            fail(f"{g.id}'s {state} typing state surfaced (a typing event)",
                 f"typing events: {[(e.get('peer'), e.get('state')) for e in got]}")
    shown = [e for e in typing_events() if e.get("peer") == blocked.id]
    if shown:
        fail(f"no typing state of {blocked.id}, whom the user blocked, surfaced",
             f"typing events: {[(e.get('peer'), e.get('state')) for e in shown]}")
