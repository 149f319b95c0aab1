"""The durable store: one SQLite file (WAL) in the data directory.

Layout (format version 1)::

    meta(key, value)                        format_version, created_at_ms
    journal(lsn, registry, kind, seq, body) one row per journal record, msgpack body;
                                            terminal rows carry their completion seq
    snapshots(registry, through_lsn, body)  the latest compacted snapshot per registry

A registry's state is its snapshot plus its journal rows after ``through_lsn``.
Every method runs on the persistence actor's thread; the connection is opened
there (``open``) and never shared.

The store refuses, with a one-line reason, to open a file that is not an
opsreg store, is damaged or truncated, comes from a newer format, or is held
by another live process (an ``flock`` on ``opsreg.lock``, released by the
kernel when that process dies, even by ``kill -9``). It never writes to a
file it refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from actors.lifecycle import JournalRecord
from actors.model import PersistedOpsSnapshot, _dec_hook, _enc_hook, trusted_values
from actors.persistence import Append, Commit, FaultPlan, Recovered

__all__ = ["FORMAT_VERSION", "STORE_FILE", "SqliteStore", "StoreError"]

FORMAT_VERSION: Final = 1
STORE_FILE: Final = "opsreg.sqlite3"
LOCK_FILE: Final = "opsreg.lock"
APPLICATION_ID: Final = 0x6F707372  # "opsr"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE journal (
    lsn INTEGER PRIMARY KEY AUTOINCREMENT,
    registry TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER,
    body BLOB NOT NULL
);
CREATE INDEX journal_by_registry ON journal (registry, lsn);
CREATE TABLE snapshots (
    registry TEXT PRIMARY KEY,
    through_lsn INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""

#: rows one INSERT statement carries (5 parameters each; SQLite allows 32,766)
_ROWS_PER_STATEMENT: Final = 256

_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_record_decoder = msgspec.msgpack.Decoder(JournalRecord, dec_hook=_dec_hook)
_snapshot_decoder = msgspec.msgpack.Decoder(PersistedOpsSnapshot, dec_hook=_dec_hook)


class StoreError(Exception):
    """The store cannot be opened or used; the message is one line meant for a person."""


class SqliteStore:
    """SQLite journal + snapshots; ``synchronous`` is ``"full"`` (default) or ``"normal"``."""

    def __init__(self, data_dir: str | os.PathLike[str], synchronous: str = "full") -> None:
        level = str(synchronous).lower()
        if level not in ("full", "normal"):
            raise StoreError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / STORE_FILE
        self.synchronous = level
        self.faults = FaultPlan()
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._last_seq: dict[str, int] = {}
        self._last_lsn = 0
        self.commits = 0
        self.rows_written = 0

    # --- opening -----------------------------------------------------------------------------

    def open(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(
                f"cannot create data directory {self.data_dir}: {exc.strerror}"
            ) from None
        self._take_lock()
        try:
            if not self.path.exists():
                self._create()
            self._db = self._connect()
        except BaseException:
            self._release_lock()
            raise

    def _take_lock(self) -> None:
        lock_path = self.data_dir / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"store {self.path} is in use by another live opsreg process (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def _create(self) -> None:
        """Build a fresh store under a temporary name and rename it into place (atomic)."""
        tmp = self.path.with_name(f".{STORE_FILE}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.executescript(
                "BEGIN;"
                + _SCHEMA
                + f"INSERT INTO meta VALUES ('format_version', '{FORMAT_VERSION}');"
                + f"INSERT INTO meta VALUES ('created_at_ms', '{time.time_ns() // 1_000_000}');"
                + "COMMIT;"
            )
            db.execute("PRAGMA journal_mode = WAL")
        finally:
            db.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _refuse(self, why: str) -> StoreError:
        return StoreError(f"refusing to open {self.path}: {why}; the file was left untouched")

    def _connect(self) -> sqlite3.Connection:
        if self.path.stat().st_size == 0:
            raise self._refuse("the file is empty (truncated?)")
        uri = f"file:{self.path}?mode=rw"
        try:
            # One cached statement per INSERT size (1.._ROWS_PER_STATEMENT rows) plus the
            # rest: re-preparing a multi-row INSERT costs more than running it.
            db = sqlite3.connect(
                uri,
                uri=True,
                isolation_level=None,
                check_same_thread=True,
                cached_statements=_ROWS_PER_STATEMENT + 64,
            )
        except sqlite3.Error as exc:
            raise self._refuse(str(exc)) from None
        try:
            self._validate(db)
            db.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA journal_size_limit = 67108864")
            # The highest lsn ever used: AUTOINCREMENT records it even after compaction
            # deleted those rows, so new rows always sort after every snapshot's through_lsn.
            self._last_lsn = db.execute(
                "SELECT MAX(COALESCE((SELECT MAX(lsn) FROM journal), 0),"
                " COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0),"
                " COALESCE((SELECT MAX(through_lsn) FROM snapshots), 0))"
            ).fetchone()[0]
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise self._refuse(f"the database is damaged ({exc})") from None
        return db

    def _validate(self, db: sqlite3.Connection) -> None:
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._refuse(f"it is not an opsreg store ({exc})") from None
        if app_id != APPLICATION_ID:
            raise self._refuse("it is not an opsreg store (wrong application id)")
        check = db.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise self._refuse(f"the database is damaged ({check[0][0]})")
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._refuse(f"its schema is incomplete ({exc})") from None
        if row is None:
            raise self._refuse("it records no format version")
        version = int(row[0])
        if version > FORMAT_VERSION:
            raise self._refuse(
                f"it was written by a newer opsreg (format {version}; "
                f"this one reads {FORMAT_VERSION})"
            )

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    # --- journal --------------------------------------------------------------------------------

    def _seq_base(self, registry: str) -> int:
        last = self._last_seq.get(registry)
        if last is None:
            db = self.db
            row = db.execute(
                "SELECT MAX(seq) FROM journal WHERE registry = ? AND seq IS NOT NULL", (registry,)
            ).fetchone()
            last = row[0] or 0
            if not last:
                snap = self._load_snapshot(registry)
                last = 0 if snap is None else snap[1].authority_state.next_completion_seq
            self._last_seq[registry] = last
        return last

    def write(self, batch: Sequence[Append | Commit]) -> dict[int, tuple[int, ...]]:
        """Append the batch's records to the journal as one transaction.

        Up to ``_ROWS_PER_STATEMENT`` rows go in as a single multi-row
        ``INSERT`` in autocommit mode: one statement is one atomic transaction,
        and one call into SQLite is one release of the GIL instead of five
        (BEGIN, INSERT, COMMIT, reading the last rowid). Larger batches are
        chunked inside ``BEGIN IMMEDIATE`` … ``COMMIT``. Journal positions
        (``lsn``) are assigned here: this process is the only writer (flock).
        """
        db = self.db
        rows: list[Any] = []
        seqs: dict[int, tuple[int, ...]] = {}
        last: dict[str, int] = {}
        lsn = self._last_lsn
        encode = _encoder.encode
        for msg in batch:
            name = msg.registry
            if isinstance(msg, Commit):
                seq = last.get(name)
                if seq is None:
                    seq = self._seq_base(name)
                assigned = []
                for rec in msg.records:
                    seq += 1
                    lsn += 1
                    rows += (lsn, name, "terminal", seq, encode(rec))
                    assigned.append(seq)
                last[name] = seq
                seqs[msg.token] = tuple(assigned)
            else:
                for record in msg.records:
                    lsn += 1
                    rows += (lsn, name, _kind(type(record)), None, encode(record))
        count = lsn - self._last_lsn
        if count == 0:
            return seqs
        if count <= _ROWS_PER_STATEMENT:
            # Faults are injected just before the statement that is the transaction.
            self.faults.before_commit(bool(seqs))
            db.execute(self._insert_sql(count), rows)
        else:
            db.execute("BEGIN IMMEDIATE")
            try:
                step = _ROWS_PER_STATEMENT * 5
                for start in range(0, len(rows), step):
                    chunk = rows[start : start + step]
                    db.execute(self._insert_sql(len(chunk) // 5), chunk)
                self.faults.before_commit(bool(seqs))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        self._last_seq.update(last)
        self._last_lsn = lsn
        self.commits += 1
        self.rows_written += count
        return seqs

    @staticmethod
    @functools.cache
    def _insert_sql(rows: int) -> str:
        return "INSERT INTO journal (lsn, registry, kind, seq, body) VALUES " + ",".join(
            ["(?, ?, ?, ?, ?)"] * rows
        )

    # --- recovery and snapshots -----------------------------------------------------------------

    def _load_snapshot(self, registry: str) -> tuple[int, PersistedOpsSnapshot] | None:
        row = self.db.execute(
            "SELECT through_lsn, body FROM snapshots WHERE registry = ?", (registry,)
        ).fetchone()
        if row is None:
            return None
        try:
            with trusted_values():  # what an older version kept may exceed today's caps
                return row[0], _snapshot_decoder.decode(row[1])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StoreError(
                f"snapshot of registry {registry!r} in {self.path} is damaged: {exc}"
            ) from None

    def recover(self, registry: str) -> Recovered:
        loaded = self._load_snapshot(registry)
        through = 0 if loaded is None else loaded[0]
        cursor = self.db.execute(
            "SELECT lsn, seq, body FROM journal WHERE registry = ? AND lsn > ? ORDER BY lsn",
            (registry, through),
        )
        decode = _record_decoder.decode
        journal: list[tuple[JournalRecord, int | None]] = []
        try:
            with trusted_values():
                for lsn, seq, body in cursor:  # noqa: B007 - lsn names the damaged row
                    journal.append((decode(body), seq))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StoreError(f"journal row {lsn} in {self.path} is damaged: {exc}") from None
        return Recovered(None if loaded is None else loaded[1], journal)

    def save_snapshot(self, registry: str, snapshot: PersistedOpsSnapshot) -> None:
        """Store ``snapshot`` as covering every journal row written so far, and drop those rows."""
        db = self.db
        body = _encoder.encode(snapshot)
        through = self._last_lsn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR REPLACE INTO snapshots (registry, through_lsn, body) VALUES (?, ?, ?)",
                (registry, through, body),
            )
            db.execute("DELETE FROM journal WHERE registry = ? AND lsn <= ?", (registry, through))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def journal_rows(self, registry: str | None = None) -> int:
        if registry is None:
            return int(self.db.execute("SELECT COUNT(*) FROM journal").fetchone()[0])
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM journal WHERE registry = ?", (registry,)
            ).fetchone()[0]
        )

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None
        self._release_lock()


@functools.cache
def _kind(record_type: type[JournalRecord]) -> str:
    """The record's tag (``register``, ``start``, …), looked up once per type."""
    return str(record_type.__struct_config__.tag)
