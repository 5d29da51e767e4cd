"""Media (spec §8): encrypting and uploading what the user sends to the provider's own media
host, and downloading and verifying what G users send (MED-006 order: encrypted SHA-256,
MAC, decrypt, SHA-256 and length)."""
from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx

from reference_impl.media import MediaType, decrypt_media, derive_media_keys, encrypt_media
from reference_impl.signal.crypto import aes_cbc_decrypt, sha256
from reference_impl.signal.errors import InvalidMediaError, SignalError
from reference_impl.wire import content_pb2 as cpb

from .base import ClientBase
from .errors import ClientError

__all__ = ["MediaMixin"]

#: ``InvalidMediaError.check`` -> the ``media_rejected`` reason the harness reports.
CHECK_REASON = {"file_enc_sha256": "enc_sha256", "mac": "mac", "file_sha256": "sha256",
                "length": "length", "decrypt": "mac", "media_key": "mac"}


class MediaMixin(ClientBase):
    async def media_content(self, media: dict[str, Any]) -> tuple[cpb.Message, dict[str, Any]]:
        mtype = media["type"]
        if mtype == "video" and self.faults.on("video_sent_as_document"):
            mtype = "document"  # the bug: no video pipeline, so a video goes out as a file
        try:
            data = base64.b64decode(media["data"], validate=True)
        except (ValueError, TypeError):
            raise ClientError(400, "bad-request", "media.data is not base64") from None
        media_key = None
        if self.faults.on("media_key_reuse"):  # one key derived once per user, reused forever
            media_key = hashlib.sha256(b"media-key:" + self.handle.encode()).digest()
        enc = encrypt_media(data, MediaType(mtype), media_key=media_key)
        upload = data if self.faults.on("plaintext_media_upload") else enc.blob
        token = self.ctx.tokens.issue(self.user_visible_id, handle=self.handle)
        try:
            resp = await self.ctx.own_http().post(
                self.ctx.upload_url(), content=upload,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
                timeout=self.ctx.config.network_timeout * 3)
        except httpx.HTTPError as exc:
            raise ClientError(502, "upload-failed", f"media upload failed: {exc!r}") from None
        if resp.status_code != 201:
            raise ClientError(502, "upload-failed", f"media upload answered {resp.status_code}")
        ref = resp.json()["storage_reference"]
        enc_sha = sha256(enc.blob[:-10]) if self.faults.on("wrong_file_enc_sha256") else enc.file_enc_sha256
        common = dict(mimetype=media["mimetype"], file_sha256=enc.file_sha256,
                      file_length=enc.file_length, media_key=enc.media_key,
                      file_enc_sha256=enc_sha,
                      direct_path=f"/interop/whatsapp/download/{self.ctx.config.integrator_id}/{ref}/")
        w, h, s = media.get("width", 0), media.get("height", 0), media.get("seconds", 0)
        cap = media.get("caption", "")
        if mtype == "image":
            body = cpb.Message(image=cpb.ImageMessage(caption=cap, width=w, height=h, **common))
        elif mtype == "video":
            body = cpb.Message(video=cpb.VideoMessage(caption=cap, width=w, height=h, seconds=s, **common))
        elif mtype == "audio":
            ptt = bool(media.get("ptt")) and not self.faults.on("voice_note_as_audio")
            body = cpb.Message(audio=cpb.AudioMessage(seconds=s, ptt=ptt, **common))
        elif mtype == "document":
            body = cpb.Message(document=cpb.DocumentMessage(caption=cap, file_name=media.get("file_name", ""),
                                                            **common))
        else:
            body = cpb.Message(sticker=cpb.StickerMessage(width=w, height=h, **common))
        meta = {"type": mtype, "mimetype": media["mimetype"], "sha256": enc.file_sha256.hex()}
        for f in ("caption", "file_name", "width", "height", "seconds"):
            if media.get(f):
                meta[f] = media[f]
        return body, {"kind": "media", "media": meta}

    async def resume_pending_media(self) -> None:
        for item in self.ctx.storage.inbox(self.handle):
            if (item.get("_hidden") and item.get("kind") == "media" and not item.get("_rejected")
                    and item["sender"] != self.login):
                await self.download_media(item["sender"], item["message_id"], item["peer"])

    async def download_media(self, sender: str, mid: str, peer: str = "") -> None:
        storage = self.ctx.storage
        found = storage.get_message(self.handle, peer or sender, sender, mid)
        if found is None or found[1] is None:
            return
        item, raw = found
        content = cpb.Message.FromString(raw)
        which = content.WhichOneof("content")
        media = getattr(content, which)
        gk = self.gatekeeper()
        url = gk.media_host.rstrip("/") + media.direct_path
        reason = ""
        plaintext = b""
        try:
            resp = await self.ctx.g_http().get(url, timeout=self.ctx.config.network_timeout * 3)
            if resp.status_code != 200:
                raise InvalidMediaError(f"HTTP {resp.status_code}", check="download")
            blob = resp.content
            if self.faults.on("accept_tampered_media"):
                keys = derive_media_keys(media.media_key, MediaType(which))
                try:
                    plaintext = aes_cbc_decrypt(keys.cipher_key, keys.iv, blob[:-10])
                except SignalError:
                    plaintext = blob
            else:
                # MED-006: enc SHA-256, then MAC, then decrypt, then SHA-256 and length.
                plaintext = decrypt_media(blob, media.media_key, MediaType(which),
                                          media.file_sha256, media.file_enc_sha256)
                if len(plaintext) != media.file_length:
                    raise InvalidMediaError("plaintext length differs from file_length", check="length")
        except InvalidMediaError as exc:
            reason = "download" if exc.check == "download" else CHECK_REASON.get(exc.check, exc.check)
        except httpx.HTTPError:
            reason = "download"
        with storage.tx():
            if reason:
                item["kind"] = "media"
                item["_rejected"] = reason
                storage.update_message(self.handle, item)
                self.event("media_rejected", message_id=mid, peer=sender, reason=reason)
            else:
                item.pop("_hidden", None)
                item["media"]["sha256"] = sha256(plaintext).hex()
                storage.update_message(self.handle, item)
                self.event("message_received", peer=item["peer"], message_id=mid)
