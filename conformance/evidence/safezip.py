"""Reading an untrusted evidence bundle with limits.

``zipfile`` trusts what it reads: it returns the *last* of two entries with one name, follows
no policy on flags, attributes or methods, and ``read()`` inflates a member whole. A bundle is
attacker-controlled input to ``verify`` and ``compare``, so this module checks the entry
metadata first and streams members with per-member and total caps. (No maintained library
does this policy; the zip parsing itself stays ``zipfile``'s.)
"""
from __future__ import annotations

import hashlib
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["BundleError", "SafeZip", "MAX_ENTRIES", "MAX_MEMBER", "MAX_TOTAL", "MAX_JSON"]

MAX_ENTRIES = 10_000
MAX_MEMBER = 64 * 1024 * 1024      # any one member, uncompressed
MAX_TOTAL = 512 * 1024 * 1024      # all members together, uncompressed
MAX_JSON = 16 * 1024 * 1024        # manifest.json / report.json, parsed in memory
_CHUNK = 64 * 1024
_ALLOWED_FLAGS = 0x0800 | 0x0008   # UTF-8 names, data descriptor; never encryption (0x1) etc.
_ALLOWED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_DOS_DIRECTORY = 0x10


class BundleError(Exception):
    """``kind`` is ``"unreadable"`` (not a usable zip, over a limit) or ``"tampered"``
    (the zip is readable but something in it was altered or is not what the kit writes)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if not name or name.endswith("/") or info.is_dir():
        return f"{name!r} is a directory entry"
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in name.split("/")):
        return f"{name!r} is not a plain relative path"
    if info.flag_bits & 0x1:
        return f"{name!r} is flagged encrypted"
    if info.flag_bits & ~_ALLOWED_FLAGS:
        return f"{name!r} has unexpected flags 0x{info.flag_bits:04x}"
    if info.compress_type not in _ALLOWED_METHODS:
        return f"{name!r} uses compression method {info.compress_type} (only stored/deflated)"
    mode = info.external_attr >> 16
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return f"{name!r} is not a regular file (mode 0o{mode:o}: symlink, directory or device)"
    if info.external_attr & _DOS_DIRECTORY:
        return f"{name!r} carries the directory attribute"
    return None


class SafeZip:
    """A bundle opened with its entry metadata checked; members are read with caps."""

    def __init__(self, path: Path) -> None:
        try:
            self._zf = zipfile.ZipFile(path)
            infos = self._zf.infolist()
        except FileNotFoundError as exc:
            raise BundleError("unreadable", f"cannot read bundle {path}: no such file") from exc
        except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError,
                NotImplementedError, UnicodeDecodeError) as exc:
            raise BundleError("unreadable", f"cannot read bundle {path}: {type(exc).__name__}: {exc}") from exc
        if len(infos) > MAX_ENTRIES:
            self.close()
            raise BundleError("unreadable", f"bundle has {len(infos)} entries (limit {MAX_ENTRIES})")
        seen: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            if info.filename in seen:
                self.close()
                raise BundleError("tampered", f"duplicate entry name {info.filename!r}: a zip tool "
                                              "would show one copy and verify another")
            problem = _entry_problem(info)
            if problem:
                self.close()
                raise BundleError("tampered", problem)
            if info.file_size > MAX_MEMBER:
                self.close()
                raise BundleError("unreadable", f"{info.filename!r} declares {info.file_size} bytes "
                                                f"(limit {MAX_MEMBER})")
            total += info.file_size
            seen[info.filename] = info
        if total > MAX_TOTAL:
            self.close()
            raise BundleError("unreadable", f"bundle declares {total} bytes uncompressed (limit {MAX_TOTAL})")
        self.infos = seen
        self._read_total = 0

    def __enter__(self) -> "SafeZip":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zf.close()

    def names(self) -> set[str]:
        return set(self.infos)

    def _chunks(self, name: str, limit: int):
        info = self.infos.get(name)
        if info is None:
            raise BundleError("tampered", f"bundle has no {name}")
        got = 0
        try:
            with self._zf.open(info) as fh:  # type: BinaryIO
                while chunk := fh.read(_CHUNK):
                    got += len(chunk)
                    self._read_total += len(chunk)
                    if got > min(limit, info.file_size):
                        raise BundleError("unreadable", f"{name}: more data than declared or allowed")
                    if self._read_total > MAX_TOTAL:
                        raise BundleError("unreadable", f"bundle inflates past {MAX_TOTAL} bytes")
                    yield chunk
        except BundleError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                RuntimeError) as exc:  # bad CRC, truncated or corrupt deflate stream, bad header
            raise BundleError("tampered", f"{name}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - zlib.error and friends: still a corrupt member
            raise BundleError("tampered", f"{name}: {type(exc).__name__}: {exc}") from exc

    def read_small(self, name: str, limit: int = MAX_JSON) -> bytes:
        """The whole member, refused when it is (or inflates to) more than ``limit`` bytes."""
        info = self.infos.get(name)
        if info is not None and info.file_size > limit:
            raise BundleError("unreadable", f"{name} is {info.file_size} bytes (limit {limit})")
        return b"".join(self._chunks(name, limit))

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        for chunk in self._chunks(name, MAX_MEMBER):
            h.update(chunk)
        return h.hexdigest()
