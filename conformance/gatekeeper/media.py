"""Media both ways (spec §7): the blobs G users send, hosted here under ``/media``, and the
fetcher that downloads provider-hosted blobs as G's media proxy does.

Provider-supplied paths are never used as file paths or evaluated: a ``direct_path`` must
match one strict pattern and only its storage reference is appended to the registered
``media_base``.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["TAMPER_MODES", "GMediaStore", "MediaFetch", "storage_reference_of"]

#: MED-003: ``/interop/whatsapp/download/{integrator_id}/{storage_reference}/``.
_PROVIDER_PATH = re.compile(r"/interop/whatsapp/download/([A-Za-z0-9_.-]{1,64})/([A-Za-z0-9_-]{1,256})/")
_REF = re.compile(r"[A-Za-z0-9_-]{1,256}")
TAMPER_MODES = ("flip_byte", "flip_mac", "truncate", "append", "replace")


def storage_reference_of(direct_path_or_ref: str) -> str | None:
    """The storage reference in a provider ``direct_path`` (or a bare reference), else None."""
    m = _PROVIDER_PATH.fullmatch(direct_path_or_ref)
    if m:
        return m.group(2)
    return direct_path_or_ref if _REF.fullmatch(direct_path_or_ref) else None


def tamper(blob: bytes, mode: str) -> bytes:
    if mode == "flip_byte":
        return bytes([blob[0] ^ 0x01]) + blob[1:] if blob else b"\x01"
    if mode == "flip_mac":
        return blob[:-1] + bytes([blob[-1] ^ 0x80]) if blob else b"\x80"
    if mode == "truncate":
        return blob[: max(0, len(blob) - 16)]
    if mode == "append":
        return blob + b"\x00" * 16
    if mode == "replace":
        return secrets.token_bytes(len(blob))
    raise ValueError(f"unknown tamper mode {mode!r}; one of {TAMPER_MODES}")


@dataclass
class Hosted:
    blob: bytes
    tamper: str | None = None
    content_type: str | None = "application/octet-stream"
    send_length: bool = True


class GMediaStore:
    """Blobs of G users, addressed by the ``direct_path`` G puts in its media messages
    (``/v/t{file_reference}``, spec §7); the client fetches ``{media_host}{direct_path}``."""

    def __init__(self) -> None:
        self._blobs: dict[str, Hosted] = {}

    def put(self, blob: bytes) -> str:
        path = "/v/t62.7118-24/" + secrets.token_urlsafe(24)
        self._blobs[path] = Hosted(bytes(blob))
        return path

    def get(self, path: str) -> Hosted | None:
        return self._blobs.get(path)

    def set_quirks(self, path: str, *, tamper_mode: str | None = None,
                   content_type: str | None = "application/octet-stream",
                   send_length: bool = True) -> None:
        """Serve ``path`` altered (MED-006 checks): tampered bytes, another or no
        Content-Type, no Content-Length (chunked)."""
        hosted = self._blobs[path]
        if tamper_mode is not None:
            tamper(b"x", tamper_mode)  # validates the mode now, not at request time
        hosted.tamper, hosted.content_type, hosted.send_length = tamper_mode, content_type, send_length

    def served_bytes(self, hosted: Hosted) -> bytes:
        return tamper(hosted.blob, hosted.tamper) if hosted.tamper else hosted.blob

    def delete(self, path: str) -> None:
        self._blobs.pop(path, None)


@dataclass
class MediaFetch:
    """What one fetch of provider media observed; ``ok`` means 200 and ``sha256_ok``."""

    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    length: int = 0
    http_version: str = ""
    sha256_ok: bool | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and self.sha256_ok is not False

    def summary(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "length": self.length,
                "http_version": self.http_version, "sha256_ok": self.sha256_ok,
                "error": self.error, "content_type": self.headers.get("content-type"),
                "content_length": self.headers.get("content-length")}


async def fetch(client: httpx.AsyncClient, url: str, *, method: str = "GET",
                headers: dict[str, str] | None = None, timeout: float,
                max_bytes: int, expected_enc_sha256: bytes | None,
                deadline: float | None = None) -> MediaFetch:
    """One bounded request (per-read ``timeout``, total ``deadline``, ``max_bytes``); errors
    become fields of the result, never exceptions."""
    result = MediaFetch(url=url)
    size = 0
    try:
        async with asyncio.timeout(deadline), client.stream(method, url, headers=headers or {}, timeout=timeout) as r:
            result.status = r.status_code
            result.http_version = r.http_version
            result.headers = {k.lower(): v for k, v in r.headers.items()}
            chunks: list[bytes] = []
            async for chunk in r.aiter_raw():
                size += len(chunk)
                if size > max_bytes:
                    result.error = f"body exceeds {max_bytes} bytes"
                    break
                chunks.append(chunk)
            result.body = b"".join(chunks)
            result.length = len(result.body)
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:200]
        return result
    except TimeoutError:
        result.error = f"total deadline of {deadline:g} s reached after {size} body bytes"
        result.body, result.length = b"", 0
        return result
    if expected_enc_sha256 is not None and result.status in (200, 206) and result.error is None:
        result.sha256_ok = hashlib.sha256(result.body).digest() == bytes(expected_enc_sha256)
    return result
