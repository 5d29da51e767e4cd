"""User-token verification for enlistment and the handshake (spec §4.1, ID-005..ID-007).

Why an edge of its own: it fetches the provider's JWKS over HTTP, which the state core must
not do; both :mod:`.enlist_handler` and :mod:`.handshake` use the one verifier.
"""
from __future__ import annotations

from collections.abc import Callable

import httpx
import jwt

from .enlistment import EnlistmentRejected
from .providers import Provider
from .state import GatekeeperState
from .tokens import TokenError, check_user_token_claims, unverified_header, verify_signature

__all__ = ["TokenVerifier"]


class TokenVerifier:
    def __init__(self, state: GatekeeperState,
                 client_for: Callable[[Provider], httpx.AsyncClient]) -> None:
        self._state = state
        self._client_for = client_for

    async def verify(self, token: str, requirement: str) -> tuple[Provider, str]:
        """Provider (by ``iss``) and ``sub`` of a user JWT, after every ID-005..007 check;
        raises :class:`EnlistmentRejected` naming the requirement broken."""
        st = self._state
        try:
            header = unverified_header(token, st.settings.max_token)
            try:
                unverified = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                raise TokenError("token payload does not decode", "ID-005") from None
            provider = next((p for p in st.providers.values()
                             if p.issuer == unverified.get("iss")), None)
            if provider is None:
                raise EnlistmentRejected("bad_integrator", "ID-007",
                                         f"no registered provider issues {str(unverified.get('iss'))[:80]!r}")
            key = await provider.key_for(header["kid"], self._client_for(provider), st.settings, st.log,
                                         clock=st.clock)
            claims = verify_signature(token, key, header["alg"])
            sub = check_user_token_claims(claims, issuer=provider.issuer,
                                          audience=st.settings.audience,
                                          clock=st.clock,
                                          iat_skew_s=st.settings.token_iat_skew_s)
        except TokenError as exc:
            raise EnlistmentRejected("bad_token", exc.requirement or requirement, exc.detail) from None
        return provider, sub
