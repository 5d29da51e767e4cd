"""Scripting hooks: what the suite injects to see how a provider client reacts.

Every call logs a ``scripted`` event first, so a report shows cause before effect. Faults are
one-shot (or ``count``-shot) and queued in :class:`~.faults.Faults`, which the simulator
drains at a single named point each (``take_request_fault``: next request stanza,
``take_connect_fault``: next handshake, ``take_enlistment_fault``: next enlistment,
``shape_delivery``: next messages to a login). This module sits above the state core: the
core never imports it.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reference_impl.wire import stanzas_pb2 as pb

from .directory import StanzaRejected
from .observe import EnlistmentOverride, EnlistmentRecord, Recording
from .stanzas import ERROR_CODES, error_stanza, fresh_id
from .state import GatekeeperState, UserEndpoint

__all__ = ["Script"]


def _code(code: str | int) -> int:
    if isinstance(code, int):
        return code
    try:
        return ERROR_CODES[code]
    except KeyError:
        raise ValueError(f"unknown error code {code!r}; one of {sorted(ERROR_CODES)}") from None


class Script:
    def __init__(self, gk: GatekeeperState) -> None:
        self._gk = gk
        self._faults = gk.faults

    def _note(self, action: str, login: str | None = None, **detail: object) -> None:
        self._gk.log.append("scripted", login, action=action, **detail)

    # -- errors on requests --------------------------------------------------------------------
    def fail_next(self, login: str, code: str | int, *, kind: str | None = "message", count: int = 1,
                  retry_after_ms: int = 0, detail: str = "", user: str = "") -> None:
        """Answer the next ``count`` requests of ``kind`` (None: any) from ``login`` with an error
        (``not_opted_in``, ``rate_limited`` with ``retry_after_ms``, ``un_enlisted``, ...).
        ``un_enlisted`` also removes the enlistment and closes the connection."""
        exc = StanzaRejected(_code(code), detail or f"scripted {code}", "scripted", user=user,
                             retry_after_ms=retry_after_ms)
        self._faults.add_request_fault(login, kind, exc, count)
        self._note("fail_next", login, code=code, kind=kind, count=count, retry_after_ms=retry_after_ms)

    def rate_limit(self, login: str, retry_after_ms: int, *, kind: str | None = "message",
                   count: int = 1) -> None:
        self.fail_next(login, "rate_limited", kind=kind, count=count, retry_after_ms=retry_after_ms)

    def fail_next_connect(self, login: str, code: str | int) -> None:
        """The next handshake of ``login`` ends with this error (``bad_token``,
        ``protocol_version``, ``un_enlisted``)."""
        self._faults.add_connect_fault(login, _code(code))
        self._note("fail_next_connect", login, code=code)

    def fail_next_enlistment(self, reason: str = "rate_limited", count: int = 1) -> None:
        """The next ``count`` valid enlistments are answered ``{"status":"fail","reason":...}``."""
        self._faults.add_enlistment_fault(reason, count)
        self._note("fail_next_enlistment", reason=reason, count=count)

    def un_enlist(self, login: str) -> None:
        """Remove the enlistment now; a connected client gets ``un_enlisted`` and is closed."""
        self._note("un_enlist", login)
        self._gk.unenlist(login, reason="scripted")
        session = self._gk.sessions.get(login)
        if session is not None:
            session.reply(error_stanza("", pb.ERROR_CODE_UN_ENLISTED, "login is no longer enlisted"))
            session.close_soon(1008, "un_enlisted")

    # -- watching and answering enlistments and handshakes (see :mod:`.observe`) -----------------
    def start_recording(self) -> Recording:
        """Keep raw enlistment requests, handshake payloads and client message stanzas from now
        until :meth:`stop_recording`. Recordings are independent; each sees everything."""
        rec = Recording()
        self._gk.recordings.append(rec)
        return rec

    def stop_recording(self, rec: Recording) -> None:
        if rec in self._gk.recordings:
            self._gk.recordings.remove(rec)

    @contextmanager
    def recording(self) -> Iterator[Recording]:
        rec = self.start_recording()
        try:
            yield rec
        finally:
            self.stop_recording(rec)

    def override_enlistments(self, *, substitute: Callable[[EnlistmentRecord], Any] | None = None,
                             force_ok: Callable[[EnlistmentRecord], bool] | None = None
                             ) -> EnlistmentOverride:
        """Answer the enlistments ``substitute`` / ``force_ok`` pick otherwise than G would
        (ENL-007, TRN-006), until :meth:`end_override`. Each callable sees every request and
        picks its own (e.g. by the token's ``sub``), so overrides of two checks do not mix."""
        o = EnlistmentOverride(substitute, force_ok)
        self._gk.enlistment_overrides.append(o)
        self._note("override_enlistments", substitute=substitute is not None,
                   force_ok=force_ok is not None)
        return o

    def end_override(self, override: EnlistmentOverride) -> None:
        if override in self._gk.enlistment_overrides:
            self._gk.enlistment_overrides.remove(override)
            self._note("end_override")

    def present_wrong_noise_key(self, key: bytes | None = None) -> bytes:
        """Handshakes that start from now on get a static key other than the published one
        (CHN-003), until :meth:`restore_noise_key` with the returned key. G cannot tell who is
        connecting before handshake message 3, so this applies to every handshake in the
        window, not to one login: keep the window short."""
        impostor = key or secrets.token_bytes(32)
        self._gk.noise_impostors.append(impostor)
        self._note("present_wrong_noise_key")
        return impostor

    def restore_noise_key(self, key: bytes) -> None:
        if key in self._gk.noise_impostors:
            self._gk.noise_impostors.remove(key)
            self._note("restore_noise_key")

    def seed_blocklist(self, login: str, *users: str) -> None:
        """Add ``users`` to the blocklist G stores for ``login`` (as another device of the same
        user would have): the client learns them with ``blocklist_get`` (CON-006)."""
        self._note("seed_blocklist", login, users=list(users))
        self._gk.accounts[login].blocklist.update(users)

    # -- consent and notifications ----------------------------------------------------------------
    def revoke_consent(self, user: UserEndpoint, provider_id: str | None = None) -> list[str]:
        """The user opts out (``provider_id`` None) or excludes one provider; every enlisted login
        concerned gets ``consent_revoked``. Returns the notified logins."""
        self._note("revoke_consent", None, user=user.id, provider=provider_id)
        return self._gk.revoke_consent(user, provider_id)

    def grant_consent(self, user: UserEndpoint, provider_id: str | None = None) -> list[str]:
        self._note("grant_consent", None, user=user.id, provider=provider_id)
        return self._gk.grant_consent(user, provider_id)

    def low_pre_keys(self, login: str, count: int | None = None) -> str:
        acct = self._gk.accounts[login]
        n = len(acct.one_time) if count is None else count
        self._note("low_pre_keys", login, count=n)
        return self._gk.notify(login, pb.Notification(low_pre_keys=pb.LowPreKeys(count=n)))

    def send_stanza(self, login: str, stanza: pb.Stanza) -> str:
        """Queue any stanza (e.g. an unknown notification kind, CHN-013) through the mailbox."""
        if not stanza.id:
            stanza.id = fresh_id("s")
        self._note("send_stanza", login, id=stanza.id, type=stanza.WhichOneof("body"))
        self._gk.deliver(login, stanza)
        return stanza.id

    def block(self, user: UserEndpoint, login: str) -> None:
        self._note("block", login, user=user.id)
        user.blocked.add(login)

    def unblock(self, user: UserEndpoint, login: str) -> None:
        self._note("unblock", login, user=user.id)
        user.blocked.discard(login)

    # -- delivery shaping ---------------------------------------------------------------------------
    def drop_next(self, login: str, n: int = 1) -> None:
        """The next ``n`` messages to ``login`` vanish (as a lossy network would lose them)."""
        self._faults.add_drop(login, n)
        self._note("drop_next", login, n=n)

    def reorder_next(self, login: str, n: int = 2) -> None:
        """Hold the next ``n`` messages to ``login`` and release them in reverse order."""
        self._faults.add_reorder(login, n)
        self._note("reorder_next", login, n=n)

    # -- media and connections ------------------------------------------------------------------------
    def tamper_media(self, direct_path: str, mode: str = "flip_byte") -> None:
        """Serve a G-hosted blob altered (MED-006 checks): flip_byte, flip_mac, truncate, ..."""
        self._note("tamper_media", None, direct_path=direct_path, mode=mode)
        self._gk.media.set_quirks(direct_path, tamper_mode=mode)

    def media_quirks(self, direct_path: str, *, content_type: str | None = None,
                     send_length: bool = False) -> None:
        """Serve a blob with another (or no) Content-Type and without Content-Length."""
        self._note("media_quirks", None, direct_path=direct_path, content_type=content_type,
                   send_length=send_length)
        self._gk.media.set_quirks(direct_path, content_type=content_type, send_length=send_length)

    def force_offline(self, login: str) -> bool:
        """Close the login's connection (1001); later deliveries go to the mailbox and push."""
        self._note("force_offline", login)
        session = self._gk.sessions.get(login)
        if session is None:
            return False
        session.close_soon(1001, "forced offline")
        return True

    def age_offline(self, login: str, seconds: float) -> int:
        """Let ``seconds`` pass for one offline login only: its last connection and its mailbox
        entries (with the ``timestamp_ms`` G stamped) move that far into the past, so G's 30-day
        rules (CON-011 inactivity, CHN-012 retention) judge it as if the clock had advanced.
        Why not ``gk.clock.advance``: one simulator serves every check of a worker, and the
        shared clock would age every other login and expire every provider token issued on
        wall time. Returns the number of mailbox entries aged."""
        if not seconds >= 0:
            raise ValueError(f"time only moves forward, not by {seconds!r} s")
        if login in self._gk.sessions:
            raise ValueError(f"{login} is connected: only an offline login's time can pass alone")
        acct = self._gk.accounts.get(login)
        if acct is not None:
            acct.last_seen -= seconds
        aged = self._gk.mailbox.age(login, seconds)
        self._note("age_offline", login, seconds=seconds, mailbox_entries=aged,
                   enlisted=acct is not None)
        return aged

    async def ping(self, login: str, timeout: float = 10.0) -> float:
        """Send ``ping`` now; returns the round-trip in seconds (CHN-008). Raises TimeoutError."""
        session = self._gk.sessions[login]
        self._note("ping", login)
        start = time.monotonic()
        fut = await session.ping()
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"{login} did not answer ping within {timeout} s") from None
        return time.monotonic() - start
