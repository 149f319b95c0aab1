"""A small tmpfs of its own for a test: a disk that can be made read-only or full.

Permission bits do not stop root (the tests run as root), a read-only mount and
a full filesystem do. ``pytest.skip`` with the reason when this process may not
mount (no ``CAP_SYS_ADMIN``, not Linux); the mount is always undone.

    with tmpfs(tmp_path / "disk", size="4m") as disk:
        ...                       # disk.path is the mount point
        disk.remount_ro()         # writes now fail with EROFS
        disk.remount_rw()
        disk.fill()               # writes now fail with ENOSPC
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["Tmpfs", "bind_mount_ro", "tmpfs"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)


class Tmpfs:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / ".filler"

    def _remount(self, mode: str) -> None:
        done = _run("mount", "-o", f"remount,{mode}", str(self.path))
        if done.returncode != 0:
            raise RuntimeError(f"remount {mode} of {self.path} failed: {done.stderr.strip()}")

    def remount_ro(self) -> None:
        self._remount("ro")

    def remount_rw(self) -> None:
        self._remount("rw")

    def fill(self) -> int:
        """Write a filler file until the filesystem is full; returns the bytes written."""
        written = 0
        block = b"\0" * 65536
        with open(self._filler, "ab") as fh:
            try:
                while True:
                    written += fh.write(block)
                    fh.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        # Top up the last partial block byte by byte: nothing at all may fit.
        with open(self._filler, "ab", buffering=0) as fh, contextlib.suppress(OSError):
            while fh.write(b"\0"):
                written += 1
        return written

    def unfill(self) -> None:
        self._filler.unlink(missing_ok=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m") -> Iterator[Tmpfs]:
    """Mount a tmpfs of ``size`` on ``path`` (created if needed) for the block's duration."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    path.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield Tmpfs(path)
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))


@contextlib.contextmanager
def bind_mount_ro(target: Path) -> Iterator[None]:
    """Make one file (or directory) read-only in place: a read-only bind mount over it."""
    done = _run("mount", "--bind", str(target), str(target))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip() or done.returncode}")
    try:
        ro = _run("mount", "-o", "remount,bind,ro", str(target))
        if ro.returncode != 0:
            pytest.skip(f"cannot remount a bind mount read-only: {ro.stderr.strip()}")
        yield
    finally:
        if _run("umount", str(target)).returncode != 0:
            _run("umount", "-l", str(target))
