"""``opsreg serve --ready-file PATH``: where a started server says where it listens.

The server writes one JSON object once it accepts requests, atomically (a
temporary file renamed over ``PATH``), *before* it prints its banner line::

    {"endpoint": "tcp://127.0.0.1:40123", "feed_endpoint": "tcp://127.0.0.1:40124",
     "pid": 4242, "data": "/abs/var" or null, "metrics": "127.0.0.1:9100" or null}

A supervisor that started it with ``--endpoint tcp://127.0.0.1:0`` learns the
ports from this file rather than by parsing the banner. ``await_ready`` is the
one reader the tests and the benchmarks share: the first stdout line (or end
of file) is the signal, the file is the data.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["await_ready", "read_ready_file", "write_ready_file"]


def write_ready_file(path: str | os.PathLike[str], info: dict[str, Any]) -> None:
    """Write ``info`` as JSON to ``path`` atomically: a reader sees all of it or nothing."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_ready_file(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The server's ready information, or None when it did not write any."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def await_ready(
    proc: subprocess.Popen[str], path: str | os.PathLike[str], timeout: float | None = None
) -> tuple[dict[str, Any] | None, str]:
    """Wait for a server started with ``--ready-file path`` to say it is ready.

    Reads its first stdout line (the banner, printed after the file is written; an
    empty string when it exited or ``timeout`` passed first) and returns the file's
    contents (None when it did not start) with that line.
    """
    assert proc.stdout is not None
    if timeout is not None:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            return None, ""
    line = proc.stdout.readline()
    return (read_ready_file(path) if line else None), line
