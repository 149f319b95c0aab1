"""The durable store: one SQLite file (WAL) in the data directory.

Layout (format version 2, ``actors/store_format.py``)::

    meta(key, value)                          format_version, created_at_ms
    journal(lsn, registry, kind, seq, body, crc)
                                              one row per journal record, msgpack body;
                                              terminal rows carry their completion seq
    snapshots(registry, through_lsn, last_seq, chunks, size, crc)
    snapshot_chunks(registry, idx, through_lsn, crc, body)
                                              the latest compacted snapshot per registry,
                                              in chunks of at most ``snapshot_chunk_size``

Every row carries a CRC-32 of all its other columns. A registry's state is its
snapshot plus its journal rows after ``through_lsn``. Every method runs on the
persistence actor's thread; the connection is opened there (``open``) and never
shared.

The store refuses, with a one-line reason, to open a file that is not an
opsreg store, is damaged (``PRAGMA quick_check``, then every row's checksum),
truncated, comes from a newer format, is behind its high-water record
(``opsreg.hwm``: acknowledged outcomes were lost), sits where it cannot be
written (read-only mount, full disk), or is held by another live process (an
``flock`` on the data directory itself, released by the kernel when that process
dies, even by ``kill -9``). It never writes to a file it refused. A version-1
store is migrated in place (``actors/store_migrate.py``).

While open, every transaction first checks that the path still names the file
it opened; if the file was deleted or replaced, it raises ``StoreLost`` and
writes nothing, then or later.

This module is the shell that sequences them; the checks at open are in
``actors/store_check.py``, the snapshot rows in ``actors/store_snapshots.py``, the
lock, probe and high-water files in ``actors/store_files.py``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from actors.errors import OpsregError
from actors.journal import JournalRecord
from actors.model import PersistedOpsSnapshot, trusted_values
from actors.persistence import Append, Commit, FaultPlan, Recovered, StoreLost
from actors.store_check import Refusal, behind, prove_writable, validate, verify
from actors.store_files import (
    HIGH_WATER_FILE,
    LOCK_FILE,
    DirectoryLock,
    LockHeld,
    fsync_dir,
    probe_writable,
    read_high_water,
    write_high_water,
)
from actors.store_format import (
    APPLICATION_ID,
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    SCHEMA,
    HighWater,
    HighWaterDamaged,
    encoder,
    record_decoder,
    row_crc,
)
from actors.store_migrate import migrate_v1
from actors.store_snapshots import Damaged, insert_snapshot, load_snapshot

__all__ = [
    "APPLICATION_ID",
    "FORMAT_VERSION",
    "HIGH_WATER_FILE",
    "LOCK_FILE",
    "STORE_FILE",
    "SqliteStore",
    "StoreError",
    "StoreLost",
]

STORE_FILE: Final = "opsreg.sqlite3"

#: Seconds between high-water records written after a commit (besides every compaction
#: and the clean stop): bounds what a lost WAL can take undetected to about this long.
DEFAULT_HIGH_WATER_EVERY: Final = 1.0

#: rows one INSERT statement carries (6 parameters each; SQLite allows 32,766)
_ROWS_PER_STATEMENT: Final = 256
_COLUMNS: Final = 6

log = logging.getLogger(__name__)

#: Connections to a store that was deleted or replaced under us. Closing one would
#: checkpoint and then unlink ``<path>-wal`` *by name* — which may by now be the WAL of
#: whatever store replaced ours. They are kept open until the process exits.
_abandoned: list[sqlite3.Connection] = []


#: What damage looks like from Python besides a failed checksum: SQLite's own errors, a
#: column of the wrong type (a flipped bit in a record header), text or an error message
#: that is no longer UTF-8 (``UnicodeDecodeError`` is a ``ValueError``).
_DAMAGE: Final = (sqlite3.Error, ValueError, TypeError, OverflowError)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class StoreError(OpsregError):
    """The store cannot be opened or used; the message is one line meant for a person."""


class SqliteStore:
    """SQLite journal + snapshots; ``synchronous`` is ``"full"`` (default) or ``"normal"``."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        synchronous: str = "full",
        *,
        snapshot_chunk_size: int = DEFAULT_CHUNK_SIZE,
        high_water_every: float = DEFAULT_HIGH_WATER_EVERY,
    ) -> None:
        level = str(synchronous).lower()
        if level not in ("full", "normal"):
            raise StoreError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        if snapshot_chunk_size < 1:
            raise StoreError(f"snapshot_chunk_size must be positive, not {snapshot_chunk_size}")
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / STORE_FILE
        self.synchronous = level
        self.snapshot_chunk_size = snapshot_chunk_size
        self.faults = FaultPlan()
        self._db: sqlite3.Connection | None = None
        self._lock = DirectoryLock(self.data_dir)
        self._identity: tuple[int, int] | None = None
        self._lost: str | None = None
        self._last_seq: dict[str, int] = {}
        self._last_lsn = 0
        self.high_water = HighWater()
        self.high_water_every = high_water_every
        self._high_water_due = 0.0
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
        self._last_seq.clear()  # a reopen after a failed commit must re-read the disk's seqs
        try:
            self._lock.acquire()
            self._probe()
            self._lock.record_holder()
        except LockHeld as held:
            self._lock.release()
            raise StoreError(
                f"store {self.path} is in use by another live opsreg process (pid {held.holder})"
            ) from None
        except BaseException:
            self._lock.release()
            raise
        try:
            recorded = self._read_high_water()
            if not self.path.exists():
                if recorded.lsn or any(recorded.seqs.values()):
                    raise self._refuse(
                        f"the store file is missing, but {HIGH_WATER_FILE} records journal "
                        f"position {recorded.lsn} (acknowledged outcomes would be lost)"
                    )
                self._create()
            self._db = self._connect(recorded)
        except BaseException:
            self._lock.release()
            raise

    def _probe(self) -> None:
        try:
            probe_writable(self.data_dir)
        except OSError as exc:
            raise StoreError(
                f"refusing to open {self.path}: the data directory {self.data_dir} "
                f"cannot be written ({exc.strerror or exc})"
            ) from None

    def _read_high_water(self) -> HighWater:
        try:
            return read_high_water(self.data_dir) or HighWater()
        except (OSError, HighWaterDamaged) as exc:
            raise self._refuse(
                f"its high-water record {self.data_dir / HIGH_WATER_FILE} is unreadable ({exc});"
                " delete that file to accept the store as it is"
            ) from None

    def _create(self) -> None:
        """Build a fresh store under a temporary name and rename it into place (atomic)."""
        tmp = self.path.with_name(f".{STORE_FILE}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.executescript(
                "BEGIN;"
                + SCHEMA
                + f"INSERT INTO meta VALUES ('format_version', '{FORMAT_VERSION}');"
                + f"INSERT INTO meta VALUES ('created_at_ms', '{time.time_ns() // 1_000_000}');"
                + "COMMIT;"
            )
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create store {self.path}: {exc}") from None
        finally:
            db.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.data_dir)

    def _refuse(self, why: str) -> StoreError:
        return StoreError(f"refusing to open {self.path}: {why}; the file was left untouched")

    def _connect(self, recorded: HighWater) -> sqlite3.Connection:
        before = self.path.stat()
        if before.st_size == 0:
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
            if validate(db) == 1:
                with trusted_values():  # a version-1 store may hold text over today's caps
                    why = migrate_v1(db, self._insert_snapshot)
                if why is not None:
                    raise Refusal(why)
                log.info("migrated store %s from format 1 to %d", self.path, FORMAT_VERSION)
            self._last_seq, self._last_lsn = verify(db)
            why = behind(recorded, self._last_seq, self._last_lsn)
            if why is not None:
                raise Refusal(why)
            self.high_water = recorded
            db.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA journal_size_limit = 67108864")
            prove_writable(db)
        except Refusal as refusal:
            db.close()
            raise self._refuse(str(refusal)) from None
        except _DAMAGE as exc:
            db.close()
            raise self._refuse(f"the database is damaged ({_one_line(exc)})") from None
        self._identity = (before.st_dev, before.st_ino)
        return db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    def _check_identity(self) -> None:
        """One ``stat`` per transaction: is the path still the file we opened?"""
        if self._lost is None:
            try:
                st = os.stat(self.path)
                same = (st.st_dev, st.st_ino) == self._identity
            except OSError:
                same = False
            if same:
                return
            self._lost = f"store {self.path} was deleted or replaced while open"
            log.error("%s; no further transaction will be written", self._lost)
        raise StoreLost(f"{self._lost}: nothing was written")

    # --- journal --------------------------------------------------------------------------------

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
        encode = encoder.encode
        for msg in batch:
            name = msg.registry
            if isinstance(msg, Commit):
                seq = last.get(name)
                if seq is None:
                    seq = self._last_seq.get(name, 0)
                assigned = []
                for rec in msg.records:
                    seq += 1
                    lsn += 1
                    body = encode(rec)
                    rows += (
                        lsn,
                        name,
                        "terminal",
                        seq,
                        body,
                        row_crc(lsn, name, "terminal", seq, body),
                    )
                    assigned.append(seq)
                last[name] = seq
                seqs[msg.token] = tuple(assigned)
            else:
                for record in msg.records:
                    lsn += 1
                    kind = _kind(type(record))
                    body = encode(record)
                    rows += (lsn, name, kind, None, body, row_crc(lsn, name, kind, None, body))
        count = lsn - self._last_lsn
        if count == 0:
            return seqs
        self._check_identity()
        if count <= _ROWS_PER_STATEMENT:
            # Faults are injected just before the statement that is the transaction.
            self.faults.before_commit(bool(seqs))
            db.execute(self._insert_sql(count), rows)
        else:
            db.execute("BEGIN IMMEDIATE")
            try:
                step = _ROWS_PER_STATEMENT * _COLUMNS
                for start in range(0, len(rows), step):
                    chunk = rows[start : start + step]
                    db.execute(self._insert_sql(len(chunk) // _COLUMNS), chunk)
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
        if time.monotonic() >= self._high_water_due:
            self._record_high_water()
        return seqs

    @staticmethod
    @functools.cache
    def _insert_sql(rows: int) -> str:
        return "INSERT INTO journal (lsn, registry, kind, seq, body, crc) VALUES " + ",".join(
            ["(?, ?, ?, ?, ?, ?)"] * rows
        )

    # --- recovery and snapshots -----------------------------------------------------------------

    def _damaged(self, what: str, detail: str) -> StoreError:
        return StoreError(
            f"{what} in {self.path} is damaged ({detail}); the file was left untouched"
        )

    def _insert_snapshot(
        self, db: sqlite3.Connection, registry: str, through: int, last_seq: int, body: bytes
    ) -> None:
        insert_snapshot(db, registry, through, last_seq, body, self.snapshot_chunk_size)

    def recover(self, registry: str) -> Recovered:
        try:
            with trusted_values():  # what an older version kept may exceed today's caps
                return self._recover(registry)
        except Damaged as damage:
            raise self._damaged(damage.what, damage.detail) from None
        except _DAMAGE as exc:
            raise self._damaged(f"registry {registry!r}", _one_line(exc)) from None

    def _recover(self, registry: str) -> Recovered:
        loaded = load_snapshot(self.db, registry)
        through, expected = (0, 0) if loaded is None else loaded[:2]
        # The rowid range, not the (registry, lsn) index: the index carries no checksum.
        cursor = self.db.execute(
            "SELECT lsn, kind, seq, body, crc FROM journal NOT INDEXED"
            " WHERE lsn > ? AND registry = ? ORDER BY lsn",
            (through, registry),
        )
        decode = record_decoder.decode
        journal: list[tuple[JournalRecord, int | None]] = []
        for lsn, kind, seq, body, crc in cursor:
            if row_crc(lsn, registry, kind, seq, body) != crc:
                raise self._damaged(f"journal row {lsn}", "checksum mismatch")
            try:
                record = decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise self._damaged(f"journal row {lsn}", str(exc)) from None
            if seq is not None:
                # A gap means a row went missing without failing a checksum.
                if seq != expected + 1 or kind != "terminal":
                    raise self._damaged(f"journal row {lsn}", f"seq {seq} after {expected}")
                expected = seq
            journal.append((record, seq))
        return Recovered(None if loaded is None else loaded[2], journal)

    def save_snapshot(self, registry: str, snapshot: PersistedOpsSnapshot) -> None:
        """Store ``snapshot`` as covering every journal row written so far, drop those rows,
        and bring the high-water record up to date."""
        db = self.db
        body = encoder.encode(snapshot)
        through = self._last_lsn
        self._check_identity()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._insert_snapshot(
                db, registry, through, snapshot.authority_state.next_completion_seq, body
            )
            db.execute("DELETE FROM journal WHERE registry = ? AND lsn <= ?", (registry, through))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self._record_high_water()

    def _record_high_water(self) -> None:
        """Write what is durable now to ``opsreg.hwm`` (best effort: it only ever lags).

        Called after a compaction, at close, and after a commit at most once per
        ``high_water_every`` seconds: a file write and three fsyncs once a second cost
        nothing measurable per commit, and a per-commit record would double the fsyncs.
        """
        self._high_water_due = time.monotonic() + self.high_water_every
        record = HighWater(lsn=self._last_lsn, seqs=dict(self._last_seq)).merge(self.high_water)
        if record == self.high_water:
            return
        try:
            if self.synchronous == "normal" and self._lost is None:
                # NORMAL does not fsync the WAL at commit: make what the record claims true.
                with open(f"{self.path}-wal", "rb") as wal:
                    os.fsync(wal.fileno())
            write_high_water(self.data_dir, record)
        except OSError as exc:
            log.warning("could not update the high-water record in %s: %s", self.data_dir, exc)
            return
        self.high_water = record

    def journal_rows(self, registry: str | None = None) -> int:
        if registry is None:
            return int(self.db.execute("SELECT COUNT(*) FROM journal").fetchone()[0])
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM journal WHERE registry = ?", (registry,)
            ).fetchone()[0]
        )

    def probe(self) -> None:
        """Prove the disk takes a sync again (after a reopen): raises if it does not.

        The checkpoint syncs the WAL (making durable whatever a failed sync left
        there, which recovery has just read as the truth) and the database file.
        """
        busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreError("the WAL could not be checkpointed")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._db is not None:
            if self._lost is None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            # Also after a loss: the outcomes acknowledged before it stay recorded, so a
            # restart on an empty or older store is refused instead of serving it.
            self._record_high_water()
            if self._lost is None:
                self._db.close()
            else:
                _abandoned.append(self._db)
            self._db = None
        self._lock.release()


@functools.cache
def _kind(record_type: type[JournalRecord]) -> str:
    """The record's tag (``register``, ``start``, …), looked up once per type."""
    return str(record_type.__struct_config__.tag)
