"""Output for the terminal: control characters escaped, times, durations, tables.

Text that comes from the registry (names, results, errors) goes through ``clean`` before it is
printed, so an operation's name cannot move the cursor or forge extra lines.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

# --- formatting --------------------------------------------------------------------------------

# C0 and C1 controls, DEL, and the bidirectional overrides/isolates that reorder a line.
_ESCAPES: Final = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}


_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})


def clean(text: object) -> str:
    """Text from the registry, safe to print on one terminal line."""
    return str(text).translate(_ESCAPES)


def out(line: str = "") -> None:
    print(line, flush=True)


def warn(command: str, message: str) -> None:
    print(f"opsreg {command}: {clean(message)}", file=sys.stderr, flush=True)


def json_line(value: Any) -> None:
    from actors.model import encode

    out(encode(value, fmt="json").decode())


def stamp(ms: int | None) -> str:
    if ms is None:
        return "-"
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out(line(headers))
    for row in rows:
        out(line(row))


def key_values(pairs: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        out(f"{key.ljust(width)}  {value}")


def detail(outcome: Any) -> str:
    """The one human fact an outcome carries (a result, an error, a reason)."""
    from actors import Aborted, Cancelled, Completed, Failed, Terminated

    if isinstance(outcome, Completed):
        prefix = "(error result) " if outcome.result.is_error else ""
        return prefix + clean(outcome.result.content)
    if isinstance(outcome, Failed):
        return clean(outcome.error)
    if isinstance(outcome, Aborted | Cancelled | Terminated):
        return "" if outcome.reason is None else clean(outcome.reason)
    return ""


def succeeded(outcome: Any) -> bool:
    from actors import Completed, Retired

    return isinstance(outcome, Completed | Retired)
