"""The enlistment edge (spec §4.2): one ``POST /3p/interop_reg`` body in, G's JSON answer out.

Parsing is :mod:`.enlistment` (pure), token checks :mod:`.identity`, and what is kept
:meth:`~.state.GatekeeperState.record_enlistment`; this module orders them and turns every
refusal into ``{"status":"fail","reason":...}`` (always HTTP 200).
"""
from __future__ import annotations

from .enlistment import EnlistmentRejected, parse_form
from .identity import TokenVerifier
from .state import GatekeeperState, TokenSeen

__all__ = ["enlist"]


async def enlist(state: GatekeeperState, verifier: TokenVerifier, body: bytes, content_type: str,
                 peer: str = "") -> dict[str, str]:
    state.log.append("enlist_request", None, peer=peer, content_type=content_type[:80],
                     size=len(body))
    try:
        injected = state.faults.take_enlistment_fault()
        form = parse_form(body, content_type)
        try:
            provider, sub = await verifier.verify(form.token, "ENL-005")
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
