"""Version 1 → version 2, in place, in one transaction, after validation.

A version-1 store has no checksums: what it holds can only be checked by
``PRAGMA quick_check`` (already passed when this runs) and by decoding every row.
If everything decodes, the rows are rewritten with checksums and the snapshots
are split into chunks, and the format version becomes 2 — all in one
transaction, so a crash midway leaves the version-1 store exactly as it was.
If anything fails to decode, nothing is written and the store is refused.
Damage a version-1 store already carried that still decodes cannot be told
from data; the checksums protect what happens to the bytes from then on.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

import msgspec

from actors.store_format import (
    FORMAT_VERSION,
    SNAPSHOT_TABLES,
    record_decoder,
    row_crc,
    snapshot_decoder,
)

__all__ = ["V1_JOURNAL", "V1_SNAPSHOTS", "migrate_v1"]

V1_JOURNAL = ["lsn", "registry", "kind", "seq", "body"]
V1_SNAPSHOTS = ["registry", "through_lsn", "body"]

#: writes one snapshot in the version-2 layout: (registry, through_lsn, last_seq, body)
SaveSnapshot = Callable[[sqlite3.Connection, str, int, int, bytes], None]


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def migrate_v1(db: sqlite3.Connection, save_snapshot: SaveSnapshot) -> str | None:
    """Migrate; returns None, or why the store cannot be migrated (nothing was written)."""
    if _columns(db, "journal") != V1_JOURNAL or _columns(db, "snapshots") != V1_SNAPSHOTS:
        return "it says format 1 but its tables are not those of format 1"
    try:
        for _lsn, body in db.execute("SELECT lsn, body FROM journal"):
            record_decoder.decode(body)
        snapshots = []
        for registry, through, body in db.execute(
            "SELECT registry, through_lsn, body FROM snapshots"
        ):
            last_seq = snapshot_decoder.decode(body).authority_state.next_completion_seq
            snapshots.append((registry, through, last_seq, body))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"its format-1 content is damaged ({exc}); it was not migrated"
    db.create_function("opsreg_row_crc", 5, row_crc, deterministic=True)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE journal ADD COLUMN crc INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE journal SET crc = opsreg_row_crc(lsn, registry, kind, seq, body)")
        db.execute("DROP TABLE snapshots")
        for statement in SNAPSHOT_TABLES.split(";"):
            if statement.strip():
                db.execute(statement)
        for registry, through, last_seq, body in snapshots:
            save_snapshot(db, registry, through, last_seq, body)
        db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION),))
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    return None
