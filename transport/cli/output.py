"""Output for the terminal: control characters escaped, times, durations, tables.

Text that comes from the registry (names, results, errors) goes through ``clean`` before it is
printed, so an operation's name cannot move the cursor or forge extra lines.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

ELLIPSIS: Final = "\u2026"

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


def terminal_width() -> int | None:
    """Columns of the terminal stdout is on (``COLUMNS`` wins); None when it is not one.

    A pipe or a file gets whole lines: tables are cut to fit a screen, not a script's
    input (scripts use ``--json``, which is never cut).
    """
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns
    return columns if columns > 0 else None


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in an ellipsis when it was cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def table_lines(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: set[int],
    *,
    shrink: int | None = None,
    width: int | None = None,
) -> list[str]:
    """The lines of a fixed-width table, none longer than ``width`` (when given).

    Too wide, column ``shrink`` (a name) gives up characters first, its cells cut with an
    ellipsis, down to its header's width; a line still too wide is cut at ``width``. Lines
    never wrap.
    """
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    total = sum(widths) + 2 * (len(widths) - 1)
    if width is not None and shrink is not None and total > width:
        widths[shrink] = max(len(headers[shrink]), widths[shrink] - (total - width))

    def line(cells: Sequence[str]) -> str:
        parts = [
            fit(c, w).rjust(w) if i in right else fit(c, w).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        text = "  ".join(parts).rstrip()
        return text if width is None else fit(text, width)

    return [line(headers), *(line(row) for row in rows)]


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: set[int],
    shrink: int | None = None,
) -> None:
    for text in table_lines(headers, rows, right, shrink=shrink, width=terminal_width()):
        out(text)


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
