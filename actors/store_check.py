"""What a store must pass before it is used: each check raises ``Refusal`` with the
reason (one line, completed by the store with its path), and reads nothing but the
database handed to it.
"""

from __future__ import annotations

import sqlite3

from actors.store_files import HIGH_WATER_FILE
from actors.store_format import (
    APPLICATION_ID,
    FORMAT_VERSION,
    HighWater,
    header_crc,
    row_crc,
)

__all__ = ["Refusal", "behind", "prove_writable", "validate", "verify"]


class Refusal(Exception):
    """Why the store must not be used."""


def validate(db: sqlite3.Connection) -> int:
    """Checks that need no checksum; returns the file's format version."""
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise Refusal(f"it is not an opsreg store ({exc})") from None
    if app_id != APPLICATION_ID:
        raise Refusal("it is not an opsreg store (wrong application id)")
    check = db.execute("PRAGMA quick_check").fetchall()
    if check != [("ok",)]:
        raise Refusal(f"the database is damaged ({check[0][0]})")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise Refusal(f"its schema is incomplete ({exc})") from None
    if row is None:
        raise Refusal("it records no format version")
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise Refusal(f"its format version {row[0]!r} is unreadable") from None
    if version > FORMAT_VERSION:
        raise Refusal(
            f"it was written by a newer opsreg (format {version}; this one reads {FORMAT_VERSION})"
        )
    if version < 1:
        raise Refusal(f"its format version {version} is unknown")
    return version


def verify(db: sqlite3.Connection) -> tuple[dict[str, int], int]:
    """Check every row's checksum, and learn each registry's last seq and the last lsn.

    Every journal row is read here, not only those a registry later asks for: a bit
    flipped in a row's ``registry`` column would otherwise move the row out of its
    registry's sight instead of failing its checksum. Tables are scanned without their
    indexes, which carry no checksum (``quick_check`` does not compare them with the
    table either).
    """
    seqs: dict[str, int] = {}
    last_lsn = 0
    # The checksums are computed inside the scan (one call per row, no row tuple
    # handed back to Python): about half the cost of fetching every row.
    db.create_function("opsreg_row_crc", 5, row_crc, deterministic=True)
    bad = db.execute(
        "SELECT lsn FROM journal NOT INDEXED"
        " WHERE opsreg_row_crc(lsn, registry, kind, seq, body) IS NOT crc LIMIT 1"
    ).fetchone()
    if bad is not None:
        raise Refusal(f"journal row {bad[0]} is damaged (checksum mismatch)")
    for registry, seq, lsn in db.execute(
        "SELECT registry, MAX(seq), MAX(lsn) FROM journal NOT INDEXED GROUP BY registry"
    ):
        last_lsn = max(last_lsn, lsn)
        if seq is not None:
            seqs[registry] = seq
    heads: dict[tuple[str, int], tuple[int, int]] = {}
    for registry, through, last_seq, chunks, size, crc in db.execute(
        "SELECT registry, through_lsn, last_seq, chunks, size, crc FROM snapshots NOT INDEXED"
    ):
        if header_crc(registry, through, last_seq, chunks, size) != crc:
            raise Refusal(f"the snapshot of registry {registry!r} is damaged (header)")
        heads[(registry, through)] = (chunks, size)
        seqs[registry] = max(seqs.get(registry, 0), last_seq)
        last_lsn = max(last_lsn, through)
    groups = {
        (registry, through): (count, size, low, high)
        for registry, through, count, size, low, high in db.execute(
            "SELECT registry, through_lsn, COUNT(*), SUM(LENGTH(body)), MIN(idx), MAX(idx)"
            " FROM snapshot_chunks NOT INDEXED GROUP BY registry, through_lsn"
        )
    }
    for key, (chunks, size) in heads.items():
        if groups.pop(key, None) != (chunks, size, 0, chunks - 1):
            raise Refusal(f"the snapshot of registry {key[0]!r} is damaged (chunks)")
    if groups:
        raise Refusal(f"snapshot chunks of {sorted(groups)[0][0]!r} have no snapshot")
    sequence = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
    # The highest lsn ever used: AUTOINCREMENT records it even after compaction
    # deleted those rows, so new rows always sort after every snapshot's through_lsn.
    return seqs, max(last_lsn, 0 if sequence is None else int(sequence[0]))


def behind(recorded: HighWater, seqs: dict[str, int], last_lsn: int) -> str | None:
    """Why the store is behind its high-water record, or None when it is not."""
    for name, seq in sorted(recorded.seqs.items()):
        have = seqs.get(name, 0)
        if have < seq:
            return (
                f"registry {name!r} is behind its high-water record (store seq {have}, "
                f"recorded seq {seq} in {HIGH_WATER_FILE}): acknowledged outcomes were lost"
            )
    if last_lsn < recorded.lsn:
        return (
            f"its journal is behind its high-water record (store lsn {last_lsn}, "
            f"recorded lsn {recorded.lsn} in {HIGH_WATER_FILE}): committed records were lost"
        )
    return None


def prove_writable(db: sqlite3.Connection) -> None:
    """A write, rolled back: SQLite opens a file it may not write read-only without a
    word, and lets ``BEGIN IMMEDIATE`` pass; only changing a row says so."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO meta (key, value) VALUES ('write_probe', '')")
        finally:
            db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise Refusal(f"the store cannot be written ({exc})") from None
