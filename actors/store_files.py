"""The files around the database: the directory lock, the writability probe and the
high-water record. Each raises ``OSError`` and leaves the wording to the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Final

from actors.store_format import HighWater, decode_high_water, encode_high_water

__all__ = [
    "HIGH_WATER_FILE",
    "LOCK_FILE",
    "DirectoryLock",
    "LockHeld",
    "fsync_dir",
    "probe_writable",
    "read_high_water",
    "write_high_water",
]

LOCK_FILE: Final = "opsreg.lock"
HIGH_WATER_FILE: Final = "opsreg.hwm"


class LockHeld(Exception):
    """Another live process holds the store; ``holder`` is its pid as it wrote it, or ``unknown``."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class DirectoryLock:
    """An exclusive ``flock`` on the data directory itself.

    A lock on a file in the directory can be defeated by deleting that file: the
    next process creates a fresh one and locks it. A directory cannot be deleted
    while it holds the store, so two processes cannot both lock *it*. The kernel
    releases the lock when the holder dies, even by ``kill -9``.

    The holder's pid goes into ``opsreg.lock`` for the refusal message only; that
    file is also ``flock``-ed, which keeps out a process of an older version that
    knows only that lock.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._dir_fd: int | None = None
        self._file_fd: int | None = None

    def acquire(self) -> None:
        """Raises ``LockHeld`` when another live process holds it, ``OSError`` otherwise."""
        fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(self._holder()) from None
        self._dir_fd = fd

    def record_holder(self) -> None:
        """Lock ``opsreg.lock`` too and write this process's pid into it (needs a writable
        directory: call after the probe, so a read-only one is refused by the probe's words)."""
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(self._holder()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._file_fd = fd

    def _holder(self) -> str:
        try:
            text = (self.data_dir / LOCK_FILE).read_bytes()[:32]
        except OSError:
            return "unknown"
        return text.decode(errors="replace").strip() or "unknown"

    def release(self) -> None:
        for fd in (self._file_fd, self._dir_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._file_fd = self._dir_fd = None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def probe_writable(data_dir: Path) -> None:
    """Create, write, fsync and remove a file: proves the directory takes new data now.

    Permission bits prove nothing for root; a read-only mount or a full disk do
    stop root, and only an attempt shows it.
    """
    probe = data_dir / f".opsreg-probe.{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, b"opsreg write probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    fsync_dir(data_dir)


def read_high_water(data_dir: Path) -> HighWater | None:
    """The record, or None when there is none. Raises ``HighWaterDamaged`` or ``OSError``."""
    try:
        data = (data_dir / HIGH_WATER_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return decode_high_water(data)


def write_high_water(data_dir: Path, record: HighWater) -> None:
    """Replace the record atomically and durably: tmp + fsync + rename + fsync dir."""
    path = data_dir / HIGH_WATER_FILE
    tmp = path.with_name(f".{HIGH_WATER_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, encode_high_water(record))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(data_dir)
