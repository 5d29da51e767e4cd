"""Enlistment at G (spec §4.2): the signed pre-key it carries, the form, G's answer, the local
rate limit, and re-enlistment after ``un_enlisted`` (CON-011)."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time

import httpx

from reference_impl.channel import PROTOCOL_VERSION
from reference_impl.signal import PrivateKey, ProtocolStore, xeddsa
from reference_impl.signal.store import SignedPreKeyRecord

from ..config import GatekeeperSettings
from ..tokens import b64u as unpadded_b64u
from .base import ClientBase
from .context import MAX_PRE_KEY_ID
from .errors import ClientError, EnlistFailed

__all__ = ["EnlistmentMixin"]


def padded_b64u(data: bytes) -> str:
    """base64url with ``=`` padding: what fault ``enlist_padded_base64`` sends."""
    return base64.urlsafe_b64encode(data).decode("ascii")


class EnlistmentMixin(ClientBase):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._reenlisting = False

    def gatekeeper(self) -> GatekeeperSettings:
        gk = self.ctx.gatekeeper()
        if gk is None:
            raise ClientError(409, "no-gatekeeper", "POST /reset with the gatekeeper's settings first")
        return gk

    def _ensure_spk(self) -> SignedPreKeyRecord:
        spk_id = self.state["spk_id"]
        if spk_id and spk_id in self.store.signed_pre_keys:
            return self.store.signed_pre_keys[spk_id]
        return self.new_signed_pre_key()

    def new_signed_pre_key(self) -> SignedPreKeyRecord:
        previous = self.state["spk_id"]  # 0: the first signed pre-key of this store
        spk_id = self.state["next_spk_id"]
        self.state["next_spk_id"] = spk_id % MAX_PRE_KEY_ID + 1
        rec = self.store.generate_signed_pre_key(spk_id, timestamp=int(self.clock.time()))
        if previous and self.faults.on("spk_signature_raw_key"):
            sig = xeddsa.sign(self.store.identity.private, rec.key_pair.public.serialize()[1:])
            rec = SignedPreKeyRecord(rec.key_id, rec.key_pair, sig, rec.timestamp)
            self.store.signed_pre_keys[spk_id] = rec
        self.state["spk_id"] = spk_id
        if previous:
            self.state["spk_retired"][str(previous)] = self.clock.time()
        self.prune_signed_pre_keys()
        return rec

    def prune_signed_pre_keys(self) -> None:
        """Forget previous signed pre-keys once their overlap is over. E2E-021 asks for at
        least 7 days after the rotation; we keep them 30 days after they were replaced."""
        now = self.clock.time()
        retired: dict[str, float] = self.state["spk_retired"]
        for kid, old in list(self.store.signed_pre_keys.items()):
            if kid == self.state["spk_id"]:
                continue
            if self.faults.on("spk_window_from_creation"):
                # the bug: 7 days counted from the key's creation, so a key older than that
                # is gone the moment it is replaced
                expired = bool(old.timestamp) and old.timestamp < now - 7 * 86400
            else:
                expired = retired.get(str(kid), now) < now - 30 * 86400
            if expired:
                del self.store.signed_pre_keys[kid]
                retired.pop(str(kid), None)

    async def enlist(self) -> str:
        gk = self.gatekeeper()
        if self.state["opted_out"]:
            # CON-008: a new opt-in needs a new enlistment with new keys.
            self.store = ProtocolStore.generate()
            self.state.update(authkey=secrets.token_bytes(32).hex(), opted_out=False,
                              deletion_pending=False, spk_id=0, consent={}, retry_sent={})
        now = time.time()
        attempts = [t for t in self.state["enlist_attempts"] if now - t < 60]
        if len(attempts) >= 3:  # ENL-007: at most 3 enlistment requests per 60 s
            self.event("enlistment_failed", reason="local_rate_limit")
            raise EnlistFailed("local_rate_limit", "3 enlistment attempts within 60 s; try later")
        self.state["enlist_attempts"] = attempts + [now]
        spk = self._ensure_spk()
        if self.faults.on("authkey_is_identity_key"):
            self.state["authkey"] = self.store.identity.private.serialize().hex()
        authkey = PrivateKey(bytes.fromhex(self.state["authkey"]))
        spk_pub = spk.key_pair.public.serialize()
        sig = spk.signature
        if self.faults.on("enlist_signature_by_authkey"):
            sig = xeddsa.sign(authkey, spk_pub)
        b64u = padded_b64u if self.faults.on("enlist_padded_base64") else unpadded_b64u
        form = {
            "authkey": b64u(authkey.public_key().serialize()[1:]),
            "e_keytype": b64u(b"\x05"),
            "e_regid": b64u(self.store.registration_id.to_bytes(4, "big")),
            "e_ident": b64u(self.store.identity.public.serialize()[1:]),
            "e_skey_id": b64u(spk.key_id.to_bytes(3, "big")),
            "e_skey_val": b64u(spk_pub[1:]),
            "e_skey_sig": b64u(sig),
            "token": self.ctx.tokens.issue(self.user_visible_id, handle=self.handle),
        }  # ENL-009: the framework's eight fields; the version travels in the handshake
        if self.faults.on("enlist_version_major_minor"):  # a 1.0.0-era form, version cut short
            form["version"] = PROTOCOL_VERSION.rsplit(".", 1)[0]
        if self.faults.on("enlist_extra_field"):
            form["device_name"] = "reference-provider"
        self.state["enlisted"] = False
        self.save()
        reason, login = "", ""
        try:
            resp = await self.ctx.g_http().post(gk.enlist_url, data=form,
                                                timeout=self.ctx.config.network_timeout)
        except httpx.HTTPError as exc:
            reason = "network"
            detail = f"{type(exc).__name__}: {exc}"
        else:
            detail = f"HTTP {resp.status_code}"
            try:
                body = resp.json()
            except ValueError:
                body = None
            if self.faults.on("enlist_fail_as_success") and resp.status_code == 200:
                login = str(body.get("login") or "") if isinstance(body, dict) else ""
                reason = ""
            elif (resp.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok"
                  and isinstance(body.get("login"), str) and body["login"]):
                login = body["login"]
                if self.faults.on("login_local_part"):
                    login = login.split("@", 1)[0]
            else:
                reason = "malformed_answer"
                if isinstance(body, dict) and body.get("status") == "fail":
                    reason = str(body.get("reason") or "fail")
                elif resp.status_code != 200:
                    reason = f"http_{resp.status_code}"
        if reason:
            self.save()
            self.event("enlistment_failed", reason=reason)
            raise EnlistFailed(reason, f"enlistment failed ({reason}; {detail})")
        self.state.update(login=login, enlisted=True, needs_pre_keys=True, needs_blocklist=True,
                          identity_notified={})
        self.save()
        self.event("enlisted")
        return login

    async def handle_un_enlisted(self) -> None:
        if self._reenlisting:
            return
        self._reenlisting = True
        try:
            await self.close_channel(deliberate=True)
            if self.faults.on("no_reenlistment"):
                self.reconnect_later()
                return
            # CON-011: enlist again with a fresh JWT before reconnecting.
            self.state["enlisted"] = False
            self.save()
            delay = 1.0
            for _ in range(5):
                try:
                    await self.enlist()
                    break
                except EnlistFailed as exc:
                    if exc.reason == "local_rate_limit":
                        await asyncio.sleep(20)
                    else:
                        await asyncio.sleep(delay)
                        delay *= 2
            else:
                return
            self.state["online"] = True
            self.save()
            with contextlib.suppress(ClientError):
                await self.ensure_connected()
        finally:
            self._reenlisting = False
