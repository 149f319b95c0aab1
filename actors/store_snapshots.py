"""A registry's snapshot in the store: one header row and its chunks (format 2).

Chunks of at most ``chunk_size`` bytes each keep every row bounded however large the
retained state grows (SQLite refuses a value over 1e9 bytes). They are written in the
caller's transaction and read back in order, every chunk checked against its
checksum, position and snapshot before the whole is decoded.
"""

from __future__ import annotations

import sqlite3

import msgspec

from actors.model import PersistedOpsSnapshot
from actors.store_format import chunk_crc, header_crc, snapshot_decoder, split

__all__ = ["Damaged", "insert_snapshot", "load_snapshot"]


class Damaged(Exception):
    """``what`` failed a check; ``detail`` says which."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.detail = detail


def insert_snapshot(
    db: sqlite3.Connection,
    registry: str,
    through: int,
    last_seq: int,
    body: bytes,
    chunk_size: int,
) -> None:
    """Replace ``registry``'s snapshot rows (inside the caller's transaction)."""
    db.execute("DELETE FROM snapshot_chunks WHERE registry = ?", (registry,))
    chunks = 0
    for idx, piece in enumerate(split(body, chunk_size)):
        db.execute(
            "INSERT INTO snapshot_chunks (registry, idx, through_lsn, crc, body)"
            " VALUES (?, ?, ?, ?, ?)",
            (registry, idx, through, chunk_crc(registry, through, idx, piece), piece),
        )
        chunks += 1
    db.execute(
        "INSERT OR REPLACE INTO snapshots (registry, through_lsn, last_seq, chunks, size, crc)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            registry,
            through,
            last_seq,
            chunks,
            len(body),
            header_crc(registry, through, last_seq, chunks, len(body)),
        ),
    )


def load_snapshot(
    db: sqlite3.Connection, registry: str
) -> tuple[int, int, PersistedOpsSnapshot] | None:
    """(through_lsn, last_seq, snapshot), every chunk checked and the whole decoded."""
    head = db.execute(
        "SELECT through_lsn, last_seq, chunks, size, crc FROM snapshots NOT INDEXED"
        " WHERE registry = ?",
        (registry,),
    ).fetchone()
    if head is None:
        return None
    through, last_seq, chunks, size, crc = head
    what = f"snapshot of registry {registry!r}"
    if header_crc(registry, through, last_seq, chunks, size) != crc:
        raise Damaged(what, "header checksum mismatch")
    parts: list[bytes] = []
    for idx, chunk_through, chunk_sum, body in db.execute(
        "SELECT idx, through_lsn, crc, body FROM snapshot_chunks NOT INDEXED"
        " WHERE registry = ? ORDER BY idx",
        (registry,),
    ):
        if idx != len(parts) or chunk_through != through:
            raise Damaged(what, f"chunk {idx} out of place")
        if chunk_crc(registry, through, idx, body) != chunk_sum:
            raise Damaged(what, f"chunk {idx} checksum mismatch")
        parts.append(body)
    data = b"".join(parts)
    if len(parts) != chunks or len(data) != size:
        raise Damaged(what, f"{len(parts)} of {chunks} chunks")
    try:
        snapshot = snapshot_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Damaged(what, str(exc)) from None
    if snapshot.authority_state.next_completion_seq != last_seq:
        raise Damaged(what, "its seq disagrees with its header")
    return through, last_seq, snapshot
