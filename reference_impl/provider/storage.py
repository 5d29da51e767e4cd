"""Persistence of the reference provider: one SQLite database and a blob directory.

- ``users``: provider accounts with the client's state (JSON) and its Signal store
  (``ProtocolStore.to_json``), so a client survives a restart without losing sessions;
- ``messages``: the inbox as the client shows it (sent and received), with the content of
  sent messages kept for resends after retry receipts;
- ``events``: what the client surfaced besides messages (harness ``/events``);
- ``media``: metadata of hosted blobs; the blobs themselves are files, written to a temporary
  name, fsynced and renamed with ``os.replace`` so no partial file is ever served.

All access runs on the event loop's thread; SQLite calls are short.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Storage", "BlobWriter", "MediaRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  handle TEXT PRIMARY KEY,
  user_visible_id TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  store TEXT,
  created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  pos INTEGER PRIMARY KEY AUTOINCREMENT,
  handle TEXT NOT NULL,
  message_id TEXT NOT NULL,
  peer TEXT NOT NULL,
  sender TEXT NOT NULL,
  item TEXT NOT NULL,
  content BLOB
);
CREATE INDEX IF NOT EXISTS messages_key ON messages (handle, peer, sender, message_id);
CREATE TABLE IF NOT EXISTS events (
  handle TEXT NOT NULL,
  seq INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (handle, seq)
);
CREATE TABLE IF NOT EXISTS decrypted (
  handle TEXT NOT NULL,
  digest TEXT NOT NULL,
  plaintext BLOB NOT NULL,
  PRIMARY KEY (handle, digest)
);
CREATE TABLE IF NOT EXISTS media (
  ref TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  size INTEGER NOT NULL,
  created INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
"""


class MediaRecord:
    __slots__ = ("ref", "owner", "size", "deleted")

    def __init__(self, ref: str, owner: str, size: int, deleted: int) -> None:
        self.ref, self.owner, self.size, self.deleted = ref, owner, size, bool(deleted)


class BlobWriter:
    """Streams one upload into a temporary file; :meth:`commit` renames it into place."""

    def __init__(self, tmp_dir: Path) -> None:
        fd, name = _mkstemp(tmp_dir)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)
        self.size += len(chunk)

    def commit(self, final: Path) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.path, final)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _mkstemp(tmp_dir: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="upload-", suffix=".part", dir=tmp_dir)


class Storage:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.blob_dir = self.data_dir / "media"
        self.tmp_dir = self.data_dir / "media-tmp"
        for d in (self.data_dir, self.blob_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
            # Identities, sessions and keys live here: private whatever the umask (issue 13).
            os.chmod(d, 0o700)
        # Leftovers of an upload interrupted by a crash are never served: remove them.
        for leftover in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
        db_path = self.data_dir / "provider.sqlite3"
        os.close(os.open(db_path, os.O_CREAT | os.O_RDWR, 0o600))  # created private, not umask's
        self.db = sqlite3.connect(db_path, isolation_level=None,
                                  check_same_thread=False)
        os.chmod(db_path, 0o600)  # an existing --data-dir file too; WAL/SHM files inherit it
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._depth = 0
        #: Called after every change a client's user could see (inbox, events).
        self.listeners: list = []

    def changed(self) -> None:
        for fn in self.listeners:
            fn()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A transaction; nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    # -- users ---------------------------------------------------------------------------
    def create_user(self, handle: str, user_visible_id: str, state: dict) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO users (handle, user_visible_id, state, created) VALUES (?,?,?,?)",
                       (handle, user_visible_id, json.dumps(state), int(time.time())))

    def user_exists_visible(self, user_visible_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM users WHERE user_visible_id=?",
                               (user_visible_id,)).fetchone() is not None

    def handle_for_visible(self, user_visible_id: str) -> str | None:
        row = self.db.execute("SELECT handle FROM users WHERE user_visible_id=?",
                              (user_visible_id,)).fetchone()
        return row[0] if row else None

    def load_users(self) -> list[tuple[str, str, dict, str | None]]:
        rows = self.db.execute("SELECT handle, user_visible_id, state, store FROM users ORDER BY created, handle")
        return [(h, v, json.loads(s), st) for h, v, s, st in rows]

    def save_user(self, handle: str, state: dict, store_json: str | None) -> None:
        with self.tx() as db:
            db.execute("UPDATE users SET state=?, store=? WHERE handle=?",
                       (json.dumps(state), store_json, handle))

    def delete_user(self, handle: str) -> None:
        """CON-014: the account and everything kept for it."""
        with self.tx() as db:
            for table in ("users", "messages", "events", "decrypted"):
                db.execute(f"DELETE FROM {table} WHERE handle=?", (handle,))  # noqa: S608 - fixed names
        self.changed()

    def reset(self) -> None:
        with self.tx() as db:
            for table in ("users", "messages", "events", "decrypted"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names

    # -- messages ------------------------------------------------------------------------
    def erase_conversations(self, handle: str) -> None:
        """CON-014: every message of the user (and the replay cache) is gone."""
        with self.tx() as db:
            db.execute("DELETE FROM messages WHERE handle=?", (handle,))
            db.execute("DELETE FROM decrypted WHERE handle=?", (handle,))
        self.changed()

    def add_message(self, handle: str, item: dict, content: bytes | None = None) -> bool:
        """Append an inbox item (callers check :meth:`has_message` first)."""
        cur = self.db.execute(
            "INSERT INTO messages (handle, message_id, peer, sender, item, content) "
            "VALUES (?,?,?,?,?,?)",
            (handle, item["message_id"], item["peer"], item["sender"], json.dumps(item), content))
        self.changed()
        return cur.rowcount == 1

    def has_message(self, handle: str, peer: str, sender: str, message_id: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM messages WHERE handle=? AND peer=? AND sender=? AND message_id=?",
            (handle, peer, sender, message_id)).fetchone() is not None

    def get_message(self, handle: str, peer: str, sender: str, message_id: str) -> tuple[dict, bytes | None] | None:
        row = self.db.execute(
            "SELECT item, content FROM messages WHERE handle=? AND peer=? AND sender=? AND message_id=? "
            "ORDER BY pos DESC", (handle, peer, sender, message_id)).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def update_message(self, handle: str, item: dict) -> None:
        self.db.execute(
            "UPDATE messages SET item=? WHERE pos=(SELECT MAX(pos) FROM messages WHERE handle=? "
            "AND peer=? AND sender=? AND message_id=?)",
            (json.dumps(item), handle, item["peer"], item["sender"], item["message_id"]))
        self.changed()

    def inbox(self, handle: str, peer: str | None = None) -> list[dict]:
        if peer is None:
            rows = self.db.execute("SELECT item FROM messages WHERE handle=? ORDER BY pos", (handle,))
        else:
            rows = self.db.execute("SELECT item FROM messages WHERE handle=? AND peer=? ORDER BY pos",
                                   (handle, peer))
        return [json.loads(r[0]) for r in rows]

    def messages_with_status(self, handle: str, status: str) -> list[tuple[dict, bytes | None]]:
        rows = self.db.execute("SELECT item, content FROM messages WHERE handle=? ORDER BY pos",
                               (handle,))
        out = []
        for item, content in rows:
            d = json.loads(item)
            if d.get("status") == status:
                out.append((d, content))
        return out

    # -- replay cache (fault accept_replayed_message only) -----------------------------------
    def remember_decrypted(self, handle: str, digest: str, plaintext: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO decrypted VALUES (?,?,?)", (handle, digest, plaintext))

    def recall_decrypted(self, handle: str, digest: str) -> bytes | None:
        row = self.db.execute("SELECT plaintext FROM decrypted WHERE handle=? AND digest=?",
                              (handle, digest)).fetchone()
        return row[0] if row else None

    # -- events --------------------------------------------------------------------------
    def add_event(self, handle: str, body: dict[str, Any]) -> dict:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE handle=?",
                              (handle,)).fetchone()
        body = {"seq": row[0] + 1, "time_ms": int(time.time() * 1000), **body}
        self.db.execute("INSERT INTO events VALUES (?,?,?)", (handle, body["seq"], json.dumps(body)))
        self.changed()
        return body

    def events(self, handle: str, after: int = 0) -> list[dict]:
        rows = self.db.execute("SELECT body FROM events WHERE handle=? AND seq>? ORDER BY seq",
                               (handle, after))
        return [json.loads(r[0]) for r in rows]

    # -- counters ------------------------------------------------------------------------
    def next_counter(self, name: str) -> int:
        with self.tx() as db:
            row = db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            value = (row[0] if row else 0) + 1
            db.execute("INSERT OR REPLACE INTO counters VALUES (?,?)", (name, value))
        return value

    # -- media ---------------------------------------------------------------------------
    def blob_path(self, ref: str) -> Path:
        return self.blob_dir / ref

    def new_blob(self) -> BlobWriter:
        return BlobWriter(self.tmp_dir)

    def add_media(self, ref: str, owner: str, writer: BlobWriter) -> None:
        writer.commit(self.blob_path(ref))
        with self.tx() as db:
            db.execute("INSERT INTO media (ref, owner, size, created) VALUES (?,?,?,?)",
                       (ref, owner, writer.size, int(time.time())))

    def media(self, ref: str) -> MediaRecord | None:
        row = self.db.execute("SELECT ref, owner, size, deleted FROM media WHERE ref=?", (ref,)).fetchone()
        return MediaRecord(*row) if row else None

    def delete_media(self, ref: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE media SET deleted=1 WHERE ref=?", (ref,))
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(ref).unlink()

    def media_of(self, owner: str) -> list[str]:
        rows = self.db.execute("SELECT ref FROM media WHERE owner=? AND deleted=0", (owner,))
        return [r[0] for r in rows]
