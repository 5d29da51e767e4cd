"""The enlistment edge (spec §4.2): one ``POST /3p/interop_reg`` body in, G's JSON answer out.

Parsing is :mod:`.enlistment` (pure), token checks :mod:`.identity`, and what is kept
:meth:`~.state.GatekeeperState.record_enlistment`; this module orders them and turns every
refusal into ``{"status":"fail","reason":...}`` (always HTTP 200). Open recordings get the
raw request first; an :class:`~.observe.EnlistmentOverride` may replace G's answer.
"""
from __future__ import annotations

import secrets

from .enlistment import EnlistmentRejected, parse_form
from .identity import TokenVerifier
from .observe import HTTP_500, EnlistmentRecord, SimulatedServerError
from .state import GatekeeperState, TokenSeen

__all__ = ["enlist"]


async def enlist(state: GatekeeperState, verifier: TokenVerifier, body: bytes, content_type: str,
                 peer: str = "") -> dict[str, str]:
    record = EnlistmentRecord(bytes(body), content_type, state.clock())
    for rec in state.recordings:
        rec.enlistments.append(record)
    overrides = list(state.enlistment_overrides)
    answer = None
    for o in overrides:
        answer = o.substitute(record) if o.substitute is not None else None
        if answer is not None:
            break
    if answer is not None:
        # G still validates and logs the request, as a scripted failure: nothing is kept.
        reason = str((answer.get("reason") if isinstance(answer, dict) else None)
                     or "kit_substituted_answer")
        state.log.append("scripted", None, action="fail_next_enlistment", reason=reason, count=1)
        await _answer(state, verifier, body, content_type, peer, forced=reason)
        record.substituted = "HTTP 500" if answer is HTTP_500 else answer
        state.log.append("scripted", None, action="substitute_enlistment", answer=record.substituted)
        if answer is HTTP_500:
            raise SimulatedServerError("scripted HTTP 500 for the enlistment request")
        return answer  # type: ignore[no-any-return]
    result = await _answer(state, verifier, body, content_type, peer)
    if result.get("status") != "ok" and any(o.force_ok is not None and o.force_ok(record)
                                            for o in overrides):
        record.substituted = {"status": "ok", "login": f"9-{secrets.randbelow(10 ** 14):014d}@interop"}
        state.log.append("scripted", None, action="force_enlistment_ok", g_answer=result)
        return record.substituted  # type: ignore[no-any-return]
    return result


async def _answer(state: GatekeeperState, verifier: TokenVerifier, body: bytes, content_type: str,
                  peer: str, *, forced: str | None = None) -> dict[str, str]:
    """G's own answer; ``forced`` fails a request that passes every check (scripted)."""
    state.log.append("enlist_request", None, peer=peer, content_type=content_type[:80],
                     size=len(body))
    try:
        injected = state.faults.take_enlistment_fault() if forced is None else forced
        form = parse_form(body, content_type)
        try:
            provider, sub = await verifier.verify(form.token, "ENL-010")
        except EnlistmentRejected as exc:
            state.tokens_seen.append(TokenSeen("enlistment", form.token, None, False, exc.reason))
            raise
        state.observe_enlist_rate(provider.provider_id, sub)
        if injected is not None:
            raise EnlistmentRejected(injected, "scripted", f"scripted failure {injected}")
    except EnlistmentRejected as exc:
        state.log.append("enlist_failed", None, reason=exc.reason, requirement=exc.requirement,
                         detail=exc.detail, peer=peer)
        return {"status": "fail", "reason": exc.reason}
    login = state.record_enlistment(provider, sub, form, peer)
    return {"status": "ok", "login": login}
