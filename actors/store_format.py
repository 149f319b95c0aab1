"""The store's on-disk encoding (format version 2): schema, checksums, snapshot chunks,
and the high-water record. Pure: no file or database is touched here.

Every checksum is ``zlib.crc32`` over the row's identity *and* its body, so a bit
flipped in any column — the registry a row belongs to, its kind, its completion
seq, its journal position or its bytes — makes the row fail verification instead
of being served as another row. CRC-32 detects every single-bit and every burst
error up to 32 bits; that is the damage a disk or a stray write does. It is not a
defence against someone who rewrites rows on purpose (they can recompute it).
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterator
from typing import Final

import msgspec

from actors.journal import JournalRecord
from actors.model import PersistedOpsSnapshot, dec_hook, enc_hook

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "SCHEMA",
    "SNAPSHOT_TABLES",
    "HighWater",
    "HighWaterDamaged",
    "chunk_crc",
    "decode_high_water",
    "encode_high_water",
    "encoder",
    "header_crc",
    "record_decoder",
    "row_crc",
    "snapshot_decoder",
    "split",
]

FORMAT_VERSION: Final = 2
APPLICATION_ID: Final = 0x6F707372  # "opsr", in the SQLite header

#: Snapshot bytes per row. SQLite refuses a value over 1e9 bytes by default
#: (``string or blob too big``), so one blob per snapshot made compaction fail
#: forever once a registry's retained state passed that; chunks keep every row
#: bounded whatever the total size.
DEFAULT_CHUNK_SIZE: Final = 1 << 20

#: The snapshot tables; version 1 had one ``snapshots(registry, through_lsn, body)`` row
#: per registry. ``journal.crc`` is added by ``ALTER TABLE`` when a version-1 store is
#: migrated, hence its default; every insert sets it.
SNAPSHOT_TABLES: Final = """
CREATE TABLE snapshots (
    registry TEXT PRIMARY KEY,
    through_lsn INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    size INTEGER NOT NULL,
    crc INTEGER NOT NULL
);
CREATE TABLE snapshot_chunks (
    registry TEXT NOT NULL,
    idx INTEGER NOT NULL,
    through_lsn INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (registry, idx)
);
"""

SCHEMA: Final = (
    """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE journal (
    lsn INTEGER PRIMARY KEY AUTOINCREMENT,
    registry TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER,
    body BLOB NOT NULL,
    crc INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX journal_by_registry ON journal (registry, lsn);
"""
    + SNAPSHOT_TABLES
)

encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
record_decoder = msgspec.msgpack.Decoder(JournalRecord, dec_hook=dec_hook)
snapshot_decoder = msgspec.msgpack.Decoder(PersistedOpsSnapshot, dec_hook=dec_hook)

_NUMBERS = struct.Struct("<qq")
_HEADER = struct.Struct("<qqqq")
_CHUNK = struct.Struct("<qq")
_crc32 = zlib.crc32


@functools.lru_cache(maxsize=4096)
def _prefix(registry: str, kind: str) -> int:
    return _crc32(f"{registry}\x00{kind}\x00".encode())


def row_crc(lsn: int, registry: str, kind: str, seq: int | None, body: bytes) -> int:
    """The checksum of one journal row: every column but the checksum itself."""
    numbers = _NUMBERS.pack(lsn, -1 if seq is None else seq)
    return _crc32(body, _crc32(numbers, _prefix(registry, kind)))


def header_crc(registry: str, through_lsn: int, last_seq: int, chunks: int, size: int) -> int:
    """The checksum of a snapshot's header row (which chunks make it up, and how long it is)."""
    numbers = _HEADER.pack(through_lsn, last_seq, chunks, size)
    return _crc32(numbers, _crc32(f"snapshot\x00{registry}\x00".encode()))


def chunk_crc(registry: str, through_lsn: int, idx: int, body: bytes | memoryview) -> int:
    """The checksum of one snapshot chunk, bound to its registry, snapshot and position."""
    head = _crc32(_CHUNK.pack(through_lsn, idx), _crc32(f"chunk\x00{registry}\x00".encode()))
    return _crc32(body, head)


def split(body: bytes, chunk_size: int) -> Iterator[bytes]:
    """``body`` in pieces of at most ``chunk_size`` bytes (at least one piece)."""
    view = memoryview(body)
    yield bytes(view[:chunk_size])
    for start in range(chunk_size, len(body), chunk_size):
        yield bytes(view[start : start + chunk_size])


# --- the high-water record -------------------------------------------------------------------


class HighWater(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The highest completion seq per registry, and the highest journal position, that
    this store is known to have made durable. Kept in a file beside the database."""

    lsn: int = 0
    seqs: dict[str, int] = {}

    def merge(self, other: HighWater) -> HighWater:
        seqs = dict(self.seqs)
        for name, seq in other.seqs.items():
            seqs[name] = max(seq, seqs.get(name, 0))
        return HighWater(lsn=max(self.lsn, other.lsn), seqs=seqs)


class HighWaterDamaged(ValueError):
    """The high-water file fails its checksum or does not parse."""


_HW_MAGIC: Final = b"opsreg-hwm 1 "
_hw_encoder = msgspec.json.Encoder(order="sorted")
_hw_decoder = msgspec.json.Decoder(HighWater)


def encode_high_water(record: HighWater) -> bytes:
    """``opsreg-hwm 1 <crc32 hex> <json>\\n``: one line, readable by a person."""
    body = _hw_encoder.encode(record)
    return _HW_MAGIC + b"%08x " % _crc32(body) + body + b"\n"


def decode_high_water(data: bytes) -> HighWater:
    if not data.startswith(_HW_MAGIC) or not data.endswith(b"\n"):
        raise HighWaterDamaged("not a high-water record")
    rest = data[len(_HW_MAGIC) : -1]
    crc, _, body = rest.partition(b" ")
    try:
        if int(crc, 16) != _crc32(body) or len(crc) != 8:
            raise HighWaterDamaged("checksum mismatch")
        return _hw_decoder.decode(body)
    except (ValueError, msgspec.DecodeError) as exc:
        raise HighWaterDamaged(str(exc)) from None
