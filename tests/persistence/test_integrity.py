"""Store integrity: damage is refused with one line, never served as data.

Checksums on every row, random bit flips, chunked snapshots, and the version-1
migration.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import msgspec
import pytest

from actors import PersistedOpsSnapshot
from actors.persistence import Append
from actors.sqlite_store import STORE_FILE, SqliteStore, StoreError
from actors.store_format import encoder, record_decoder, snapshot_decoder
from bench.bitflip import EPOCH, MAX_COMPLETED, build, recover_all, run_trials

pytestmark = pytest.mark.timeout(120)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _built(tmp_path: Path) -> tuple[Path, dict[str, PersistedOpsSnapshot]]:
    data = tmp_path / "store"
    return data, build(data, seed=3)


def _edit(data: Path, sql: str, *params: object) -> None:
    """Change the file with plain SQL: the damage is then perfectly well-formed SQLite."""
    db = sqlite3.connect(data / STORE_FILE)
    try:
        assert db.execute(sql, params).rowcount >= 1
        db.commit()
    finally:
        db.close()


def _assert_refused(data: Path, match: str) -> None:
    path = data / STORE_FILE
    before = _digest(path)
    with pytest.raises(StoreError, match=match) as err:
        recover_all(data)
    assert "\n" not in str(err.value)
    assert _digest(path) == before, "a refused store must be left untouched"


def test_random_bit_flips_are_refused_or_harmless(tmp_path: Path) -> None:
    """60 flips of one random bit each (fixed seed): none may be served as altered data.

    On the original format about 1 flip in 5 came back altered (bench/bitflip.py)."""
    counts, bad = run_trials(tmp_path, trials=60, seed=11)
    assert counts["altered"] == 0 and counts["unusable"] == 0, bad
    assert counts["refused"] > 0 and counts["identical"] > 0, counts


def test_undamaged_store_recovers_exactly(tmp_path: Path) -> None:
    data, expected = _built(tmp_path)
    assert recover_all(data) == expected


def _a_row(data: Path, where: str = "seq IS NOT NULL") -> tuple[int, bytes]:
    db = sqlite3.connect(data / STORE_FILE)
    try:
        lsn, body = db.execute(
            f"SELECT lsn, body FROM journal WHERE {where} ORDER BY lsn LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    return lsn, body


def test_a_rewritten_display_name_is_refused(tmp_path: Path) -> None:
    data, _ = _built(tmp_path)
    lsn, body = _a_row(data)
    record = record_decoder.decode(body)
    forged = msgspec.structs.replace(
        record,
        spec=msgspec.structs.replace(record.spec, display_name="someone else"),  # type: ignore[union-attr]
    )
    _edit(data, "UPDATE journal SET body = ? WHERE lsn = ?", encoder.encode(forged), lsn)
    _assert_refused(data, f"journal row {lsn} is damaged")


@pytest.mark.parametrize(
    ("column", "value"),
    [("registry", "alphb"), ("seq", 999), ("kind", "start"), ("lsn", 10**6)],
)
def test_every_column_of_a_row_is_covered(tmp_path: Path, column: str, value: object) -> None:
    """A row moved to another registry (or seq, kind, position) must not be served there."""
    data, _ = _built(tmp_path)
    lsn, _body = _a_row(data)
    _edit(data, f"UPDATE journal SET {column} = ? WHERE lsn = ?", value, lsn)
    _assert_refused(data, "is damaged")


def test_a_vanished_terminal_row_is_refused(tmp_path: Path) -> None:
    """A deleted row fails no checksum; the gap in the registry's seqs gives it away."""
    data, _ = _built(tmp_path)
    db = sqlite3.connect(data / STORE_FILE)
    lsn = db.execute(
        "SELECT lsn FROM journal WHERE seq IS NOT NULL AND registry = 'beta' ORDER BY lsn"
        " LIMIT 1 OFFSET 1"
    ).fetchone()[0]
    db.close()
    _edit(data, "DELETE FROM journal WHERE lsn = ?", lsn)
    _assert_refused(data, "seq")


def test_a_rewritten_snapshot_chunk_is_refused(tmp_path: Path) -> None:
    data, _ = _built(tmp_path)
    _edit(
        data,
        "UPDATE snapshot_chunks SET body = substr(body, 1, 10) || x'00' || substr(body, 12)"
        " WHERE registry = 'gamma' AND idx = 0",
    )
    _assert_refused(data, "snapshot of registry 'gamma' .*damaged")


def test_a_snapshot_header_moved_to_another_registry_is_refused(tmp_path: Path) -> None:
    data, _ = _built(tmp_path)
    _edit(data, "UPDATE snapshots SET registry = 'delta' WHERE registry = 'alpha'")
    _assert_refused(data, "snapshot of registry 'delta' is damaged")


@pytest.mark.parametrize("chunk_size", [97, 4096])
def test_snapshots_are_stored_in_bounded_chunks(tmp_path: Path, chunk_size: int) -> None:
    """No row grows with the snapshot: compaction works whatever the retained size."""
    from actors.lifecycle import Lifecycle
    from actors.registry import fold_recovered
    from tests.conftest import background_spec

    lc = Lifecycle(max_completed=MAX_COMPLETED)
    specs = [background_spec(f"op-{i:04}-" + "n" * 40) for i in range(200)]
    store = SqliteStore(tmp_path, snapshot_chunk_size=chunk_size)
    store.open()
    try:
        store.write([Append("big", tuple(lc.register(s, 1) for s in specs))])
        snapshot = lc.to_persisted(EPOCH)
        size = len(encoder.encode(snapshot))
        store.save_snapshot("big", snapshot)
        largest, count = store.db.execute(
            "SELECT MAX(LENGTH(body)), COUNT(*) FROM snapshot_chunks"
        ).fetchone()
        assert largest <= chunk_size
        assert count == -(-size // chunk_size) > 1
    finally:
        store.close()
    store = SqliteStore(tmp_path, snapshot_chunk_size=chunk_size)
    store.open()
    try:
        recovered = store.recover("big")
        assert recovered.snapshot == snapshot and recovered.journal == []
        assert fold_recovered(recovered, MAX_COMPLETED, None).to_persisted(EPOCH) == snapshot
    finally:
        store.close()


def test_a_missing_snapshot_chunk_is_refused(tmp_path: Path) -> None:
    from actors.lifecycle import Lifecycle
    from tests.conftest import background_spec

    lc = Lifecycle(max_completed=MAX_COMPLETED)
    store = SqliteStore(tmp_path, snapshot_chunk_size=128)
    store.open()
    try:
        store.write(
            [Append("r", tuple(lc.register(background_spec(f"{i}"), 1) for i in range(20)))]
        )
        store.save_snapshot("r", lc.to_persisted(EPOCH))
    finally:
        store.close()
    _edit(tmp_path, "DELETE FROM snapshot_chunks WHERE idx = 3")
    _assert_refused(tmp_path, "snapshot of registry 'r' is damaged")


# --- version 1 --------------------------------------------------------------------------------

_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE journal (
    lsn INTEGER PRIMARY KEY AUTOINCREMENT, registry TEXT NOT NULL, kind TEXT NOT NULL,
    seq INTEGER, body BLOB NOT NULL
);
CREATE INDEX journal_by_registry ON journal (registry, lsn);
CREATE TABLE snapshots (registry TEXT PRIMARY KEY, through_lsn INTEGER NOT NULL, body BLOB NOT NULL);
"""


def _as_v1(v2: Path, v1: Path) -> None:
    """Rewrite a version-2 store as the original code would have written it."""
    from actors.sqlite_store import APPLICATION_ID

    v1.mkdir()
    src = sqlite3.connect(v2 / STORE_FILE)
    dst = sqlite3.connect(v1 / STORE_FILE, isolation_level=None)
    dst.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    dst.executescript("BEGIN;" + _V1_SCHEMA + "COMMIT;")
    dst.execute("PRAGMA journal_mode = WAL")
    dst.execute("BEGIN")
    dst.execute("INSERT INTO meta VALUES ('format_version', '1')")
    dst.executemany(
        "INSERT INTO journal (lsn, registry, kind, seq, body) VALUES (?, ?, ?, ?, ?)",
        src.execute("SELECT lsn, registry, kind, seq, body FROM journal ORDER BY lsn"),
    )
    for registry, through in src.execute("SELECT registry, through_lsn FROM snapshots").fetchall():
        body = b"".join(
            row[0]
            for row in src.execute(
                "SELECT body FROM snapshot_chunks WHERE registry = ? ORDER BY idx", (registry,)
            )
        )
        snapshot_decoder.decode(body)
        dst.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (registry, through, body))
    sequence = src.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()[0]
    dst.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'journal'", (sequence,))
    dst.execute("COMMIT")
    dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    dst.close()


def test_a_version_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    data, expected = _built(tmp_path)
    v1 = tmp_path / "v1"
    _as_v1(data, v1)
    assert recover_all(v1) == expected
    db = sqlite3.connect(v1 / STORE_FILE)
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone() == (
            "2",
        )
        assert db.execute("SELECT COUNT(*) FROM journal WHERE crc = 0").fetchone() == (0,)
    finally:
        db.close()
    assert recover_all(v1) == expected  # and it reopens as version 2


def test_a_damaged_version_1_store_is_refused_and_not_migrated(tmp_path: Path) -> None:
    data, _ = _built(tmp_path)
    v1 = tmp_path / "v1"
    _as_v1(data, v1)
    _edit(v1, "UPDATE journal SET body = x'c1c1c1' WHERE lsn = (SELECT MAX(lsn) FROM journal)")
    _assert_refused(v1, "format-1 content is damaged")
    db = sqlite3.connect(v1 / STORE_FILE)
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone() == (
            "1",
        )
    finally:
        db.close()


def test_every_registry_is_checked_at_open(tmp_path: Path) -> None:
    """Damage in a registry nobody asks for still refuses the store: the scan covers all."""
    data, _ = _built(tmp_path)
    lsn, _ = _a_row(data, "registry = 'gamma'")
    _edit(data, "UPDATE journal SET crc = crc + 1 WHERE lsn = ?", lsn)
    store = SqliteStore(data)
    with pytest.raises(StoreError, match=f"journal row {lsn} is damaged"):
        store.open()
