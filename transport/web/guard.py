"""Requests a gateway refuses before any route sees them: cross-site writes and, without a
token, any name but loopback in ``Host`` (docs/http.md §4). Pure code.

Why: a gateway on 127.0.0.1 without a token trusts whoever can reach it, and a web page
in the user's browser can: a ``fetch`` with a text body needs no CORS preflight, so any
site could register or cancel operations (cross-site request forgery), and a site whose
name is re-pointed at 127.0.0.1 (DNS rebinding) could read them too. Browsers name the
page's origin in ``Origin`` (and ``Sec-Fetch-Site``) and the name they asked for in
``Host``; ``curl`` and programs send no ``Origin`` and a loopback ``Host``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

__all__ = ["loopback_host", "refusal"]

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name or address (never
    resolved: a name that resolves to 127.0.0.1 is how DNS rebinding gets in)."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8080
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refusal(method: str, headers: Mapping[str, str], has_token: bool) -> str | None:
    """Why the request is refused (403), or None."""
    host = headers.get("host", "")
    if not has_token and not loopback_host(host):
        return (
            f"Host {host[:100]!r} is not a loopback name: a gateway without a token answers "
            "only to localhost and loopback addresses (give --http-token-file to serve others)"
        )
    if method in _READS:
        return None
    if headers.get("sec-fetch-site") == "cross-site":
        return "a cross-site request may not change state"
    origin = headers.get("origin")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return f"Origin {origin[:100]!r} is not this gateway's: a cross-site request may not change state"
    return None
