"""Where sessions live between runs: SQLite (WAL) for the record, a content-addressed folder for files.

The database (``data_dir/remix.db``) holds every source song's identity, every session, its
version tree (each version's spec: the recipe, never removed), its turns, which renders exist
on disk, and the usage ledger (renders, exports and plays of each remix, against its source
track). Files go into ``data_dir/blobs/<2 hex>/<sha256>``, named by the hash of their bytes and
written atomically, so a file under its name is always whole, and the same song uploaded
twice is kept once.

Everything a listener did is committed before the audio is rendered: a render killed halfway
leaves a recipe with no audio (redone on demand), never a version with broken audio. Each
write is one transaction; SQLite's WAL journal makes each one atomic and durable and lets
several threads (the studio's listeners) read while one writes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tools.errors import RemixError
from tools.files import atomic_path, sha256_file

__all__ = ["Store", "SessionRecord"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    sha256 TEXT PRIMARY KEY,          -- of the file's bytes; the file is blobs/<sha256>
    audio_key TEXT NOT NULL,          -- the engine's key (hash of the decoded samples)
    name TEXT NOT NULL,               -- the file name the listener gave
    title TEXT, artist TEXT, isrc TEXT,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    source_sha256 TEXT NOT NULL REFERENCES sources(sha256),
    current INTEGER NOT NULL DEFAULT 0,
    redo TEXT NOT NULL DEFAULT '{}',  -- JSON: version -> the child an undo came back from
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    number INTEGER NOT NULL,
    parent INTEGER,
    spec TEXT NOT NULL,               -- the recipe: RemixSpec as JSON
    calls TEXT NOT NULL DEFAULT '[]',
    request TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, number)
);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    position INTEGER NOT NULL,
    request TEXT NOT NULL, reply TEXT NOT NULL, calls TEXT NOT NULL,
    version INTEGER NOT NULL, planner TEXT NOT NULL, notes TEXT NOT NULL,
    seconds REAL NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (session_id, position)
);
CREATE TABLE IF NOT EXISTS renders (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    number INTEGER NOT NULL,
    path TEXT NOT NULL,               -- relative to the data folder (absolute when outside it)
    sha256 TEXT NOT NULL,
    rendered_at REAL NOT NULL,
    used_at REAL NOT NULL,
    PRIMARY KEY (session_id, number)
);
CREATE TABLE IF NOT EXISTS events (   -- the usage ledger
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_sha256 TEXT NOT NULL,
    session_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('render', 'export', 'play')),
    detail TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_source ON events(source_sha256, session_id, version);
"""


@dataclass(frozen=True)
class SessionRecord:
    """A stored session: enough to bring it back after a restart."""

    id: str
    source_sha256: str
    source_path: Path  # the song's file in the blob store
    source_name: str
    current: int
    redo: dict[int, int]
    versions: list[dict[str, Any]]
    turns: list[dict[str, Any]]


class Store:
    """The database and the blob folder under ``data_dir``; safe to share between threads."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.blobs = self.data_dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "remix.db"
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint, never corrupt
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RemixError(f"{self.path.name} was written by a newer version of the project")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise RemixError(f"the session database {self.path.name} cannot be opened: {error}") from error

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, statements: Iterable[tuple[str, tuple]]) -> None:
        """Run ``statements`` as one transaction: all of them or none."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    # ------------------------------------------------------------------ blobs

    def put_file(self, path: str | os.PathLike) -> tuple[str, Path]:
        """Copy ``path`` into the blob folder (once per content); (sha256, its blob path)."""
        digest = sha256_file(path)
        blob = self.blob_path(digest)
        if not blob.exists():
            with atomic_path(blob) as temp:
                shutil.copyfile(path, temp)
                with open(temp, "rb") as handle:
                    os.fsync(handle.fileno())
        return digest, blob

    def blob_path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise RemixError(f"{digest!r} is not a content hash")
        return self.blobs / digest[:2] / digest

    # ------------------------------------------------------------------ sessions

    def add_source(self, path: str | os.PathLike, audio_key: str, name: str, tags: dict[str, str] | None = None) -> tuple[str, Path]:
        """Keep the song's file and identity; (its sha256, its blob path)."""
        digest, blob = self.put_file(path)
        tags = tags or {}
        self._write([(
            "INSERT OR IGNORE INTO sources (sha256, audio_key, name, title, artist, isrc, added_at) VALUES (?,?,?,?,?,?,?)",
            (digest, audio_key, name, tags.get("title"), tags.get("artist"), tags.get("isrc"), time.time()),
        )])  # fmt: skip
        return digest, blob

    def source(self, digest: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM sources WHERE sha256 = ?", (digest,))
        return rows[0] if rows else None

    def create_session(self, session_id: str, source_sha256: str, first_spec: str) -> None:
        now = time.time()
        self._write([
            ("INSERT INTO sessions (id, source_sha256, created_at, updated_at) VALUES (?,?,?,?)",
             (session_id, source_sha256, now, now)),
            ("INSERT INTO versions (session_id, number, parent, spec, summary, created_at) VALUES (?,?,?,?,?,?)",
             (session_id, 0, None, first_spec, "the original song", now)),
        ])  # fmt: skip

    def save_turn(self, session_id: str, versions: list[dict[str, Any]], current: int, redo: dict[int, int], turn: dict[str, Any] | None) -> None:
        """Record new versions, where the session stands, and the turn, in one transaction."""
        now = time.time()
        statements = [
            (
                "INSERT OR IGNORE INTO versions (session_id, number, parent, spec, calls, request, summary, created_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (session_id, v["number"], v["parent"], v["spec"], json.dumps(v["calls"]), v["request"], v["summary"], now),
            )
            for v in versions
        ]
        statements.append((
            "UPDATE sessions SET current = ?, redo = ?, updated_at = ? WHERE id = ?",
            (current, json.dumps({str(k): v for k, v in redo.items()}), now, session_id),
        ))  # fmt: skip
        if turn is not None:
            statements.append((
                "INSERT INTO turns (session_id, position, request, reply, calls, version, planner, notes, seconds, created_at)"
                " VALUES (?, (SELECT COUNT(*) FROM turns WHERE session_id = ?), ?,?,?,?,?,?,?,?)",
                (session_id, session_id, turn["request"], turn["reply"], json.dumps(turn["calls"]), turn["version"],
                 turn["planner"], json.dumps(turn["notes"]), turn["seconds"], now),
            ))  # fmt: skip
        self._write(statements)

    def load_session(self, session_id: str) -> SessionRecord | None:
        rows = self._rows(
            "SELECT s.*, src.name AS source_name FROM sessions s JOIN sources src ON src.sha256 = s.source_sha256 WHERE s.id = ?",
            (session_id,),
        )
        if not rows:
            return None
        row = rows[0]
        versions = self._rows("SELECT * FROM versions WHERE session_id = ? ORDER BY number", (session_id,))
        for version in versions:
            version["calls"] = json.loads(version["calls"])
        turns = self._rows("SELECT * FROM turns WHERE session_id = ? ORDER BY position", (session_id,))
        for turn in turns:
            turn["calls"], turn["notes"] = json.loads(turn["calls"]), json.loads(turn["notes"])
        return SessionRecord(
            id=row["id"],
            source_sha256=row["source_sha256"],
            source_path=self.blob_path(row["source_sha256"]),
            source_name=row["source_name"],
            current=row["current"],
            redo={int(k): v for k, v in json.loads(row["redo"]).items()},
            versions=versions,
            turns=turns,
        )

    def sessions(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT s.id, s.current, s.created_at, s.updated_at, src.name AS song,"
            " (SELECT COUNT(*) FROM versions v WHERE v.session_id = s.id) AS versions"
            " FROM sessions s JOIN sources src ON src.sha256 = s.source_sha256 ORDER BY s.updated_at DESC"
        )

    # ------------------------------------------------------------------ renders and the ledger

    def record_render(self, session_id: str, number: int, path: Path, source_sha256: str) -> None:
        now = time.time()
        path = Path(path).resolve()
        try:
            relative = str(path.relative_to(self.data_dir.resolve()))
        except ValueError:  # kept outside the data folder (a session given its own folder)
            relative = str(path)
        self._write([
            ("INSERT OR REPLACE INTO renders (session_id, number, path, sha256, rendered_at, used_at) VALUES (?,?,?,?,?,?)",
             (session_id, number, relative, sha256_file(path), now, now)),
            ("INSERT INTO events (source_sha256, session_id, version, kind, at) VALUES (?,?,?,?,?)",
             (source_sha256, session_id, number, "render", now)),
        ])  # fmt: skip

    def record_use(self, session_id: str, number: int, kind: str, source_sha256: str, detail: str = "") -> None:
        """A play or an export of a version: counted in the ledger, and keeps its render fresh."""
        now = time.time()
        self._write([
            ("INSERT INTO events (source_sha256, session_id, version, kind, detail, at) VALUES (?,?,?,?,?,?)",
             (source_sha256, session_id, number, kind, detail, now)),
            ("UPDATE renders SET used_at = ? WHERE session_id = ? AND number = ?", (now, session_id, number)),
        ])  # fmt: skip

    def render_ok(self, session_id: str, number: int, path: Path) -> bool:
        """True when ``path`` is the whole render recorded for that version (same bytes)."""
        rows = self._rows("SELECT sha256 FROM renders WHERE session_id = ? AND number = ?", (session_id, number))
        return bool(rows) and Path(path).exists() and sha256_file(path) == rows[0]["sha256"]

    def clean(self, retention_days: float, now: float | None = None) -> list[Path]:
        """Remove rendered audio not used for ``retention_days`` (0: keep all). Recipes stay.

        Returns the files removed; the versions they belonged to render again on demand.
        """
        if retention_days <= 0:
            return []
        cutoff = (now or time.time()) - retention_days * 86400
        old = self._rows("SELECT session_id, number, path FROM renders WHERE used_at < ?", (cutoff,))
        removed = []
        for row in old:
            path = self.data_dir / row["path"]
            for extra in [path, *path.parent.glob(f"v{row['number']}.*"), *path.parent.glob(f"v{row['number']}-*")]:
                if extra.is_file() and extra.suffix != ".json":
                    extra.unlink(missing_ok=True)
                    removed.append(extra)
        self._write(
            ("DELETE FROM renders WHERE session_id = ? AND number = ?", (row["session_id"], row["number"])) for row in old
        )
        # Uploads (each song is kept in the blob folder from the moment it opens).
        for upload in (self.data_dir / "uploads").rglob("*"):
            if upload.is_file() and upload.stat().st_mtime < cutoff:
                upload.unlink(missing_ok=True)
                removed.append(upload)
        # Temporary files of writes that were killed halfway (hidden names), once surely abandoned.
        for stray in [*(self.data_dir / "sessions").glob("*/.*"), *self.blobs.glob("*/.*")]:
            if stray.is_file() and stray.stat().st_mtime < (now or time.time()) - 3600:
                stray.unlink(missing_ok=True)
                removed.append(stray)
        return removed

    def ledger(self) -> list[dict[str, Any]]:
        """Per source track: its remixes (versions), their lineage and usage counts."""
        report = []
        for source in self._rows("SELECT * FROM sources ORDER BY added_at"):
            remixes = []
            for version in self._rows(
                "SELECT v.session_id, v.number, v.parent, v.request, v.summary, v.spec FROM versions v"
                " JOIN sessions s ON s.id = v.session_id WHERE s.source_sha256 = ? AND v.number > 0"
                " ORDER BY s.created_at, v.number",
                (source["sha256"],),
            ):
                counts = dict.fromkeys(("render", "export", "play"), 0)
                for row in self._rows(
                    "SELECT kind, COUNT(*) AS n FROM events WHERE session_id = ? AND version = ? GROUP BY kind",
                    (version["session_id"], version["number"]),
                ):
                    counts[row["kind"]] = row["n"]
                lineage = self._lineage(version["session_id"], version["number"])
                remixes.append({
                    "session": version["session_id"], "version": version["number"],
                    "request": version["request"], "summary": version["summary"],
                    "lineage": lineage, "spec": json.loads(version["spec"]), **counts,
                })  # fmt: skip
            report.append({
                "source": {k: source[k] for k in ("sha256", "name", "title", "artist", "isrc")},
                "remixes": remixes,
                "totals": {k: sum(r[k] for r in remixes) for k in ("render", "export", "play")},
            })  # fmt: skip
        return report

    def _lineage(self, session_id: str, number: int) -> list[dict[str, Any]]:
        """The versions from the original to ``number``: [{version, request}, ...]."""
        chain = []
        current: int | None = number
        while current is not None:
            rows = self._rows("SELECT number, parent, request FROM versions WHERE session_id = ? AND number = ?", (session_id, current))
            if not rows:
                break
            chain.append({"version": rows[0]["number"], "request": rows[0]["request"]})
            current = rows[0]["parent"]
        return chain[::-1]
