"""JSON in and out of the gateway: a method's arguments by name, its value as JSON.

Pure code, derived from the method table (actors/calls.py): the arguments of a method are
its ``Arg`` entries, read by name from a JSON object and checked with the same types the
wire codec uses, so a value the wire would refuse is refused here too (422
``InvalidArgument``), before anything is sent. docs/http.md §1.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import msgspec

from actors.calls import Method
from actors.errors import InvalidArgument
from actors.model import (
    OperationId,
    OperationResult,
    OperationSpec,
    dec_hook,
    enc_hook,
)

__all__ = ["decode_args", "decode_cursor", "encode_cursor", "encode_json", "parse_body"]

#: argument types a JSON object may leave fields out of (Python's defaults apply)
_BY_KEYWORD: Final = (OperationSpec, OperationResult)
#: the body field of a future-returning method that is not an argument
TIMEOUT_FIELD: Final = "timeout"

_encoder = msgspec.json.Encoder(enc_hook=enc_hook)


def encode_json(value: Any) -> bytes:
    """A method's value (or any model value) as JSON bytes."""
    return _encoder.encode(value)


def parse_body(data: bytes) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``)."""
    if not data.strip():
        return {}
    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument(
            f"the body must be a JSON object of arguments by name, not {type(body).__name__}"
        )
    return body


#: what the wire can carry (msgpack integers); the client's encoder refuses anything else
_INT_RANGE: Final = range(-(1 << 63), 1 << 64)


def _check_ints(value: Any) -> None:
    """InvalidArgument for an integer the wire cannot carry, anywhere in the body."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in _INT_RANGE:
            raise InvalidArgument(f"integer out of range: {str(value)[:40]}")
    elif isinstance(value, dict):
        for v in value.values():
            _check_ints(v)
    elif isinstance(value, list):
        for v in value:
            _check_ints(v)


def _convert(name: str, kind: Any, value: Any) -> Any:
    if kind is OperationId:  # most calls' one argument: 3× faster than msgspec.convert
        try:
            return OperationId(value)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{name}: {exc.detail}") from None
    if kind in _BY_KEYWORD:
        if not isinstance(value, dict):
            raise InvalidArgument(f"{name} must be an object, got {type(value).__name__}")
        try:
            return kind(**{str(k): v for k, v in value.items()})
        except TypeError as exc:
            raise InvalidArgument(f"{name}: {exc}") from None
        except InvalidArgument as exc:
            raise InvalidArgument(f"{name}: {exc.detail}") from None
    try:
        return msgspec.convert(value, kind, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"{name}: {str(exc).replace('invalid argument: ', '')}") from None


def decode_args(method: Method, body: dict[str, Any]) -> tuple[Any, ...]:
    """The positional arguments of ``method`` from ``body`` (arguments by name).

    An unknown name, a missing required argument or a value of the wrong type is
    ``InvalidArgument``; optional arguments left out are None.
    """
    _check_ints(body)
    known = {a.name for a in method.args}
    if method.future:
        known.add(TIMEOUT_FIELD)
    unknown = sorted(set(body) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidArgument(
            f"{method.name} has no argument {unknown[0]!r} (arguments: {allowed})"
        )
    args: list[Any] = []
    for arg in method.args:
        if arg.name not in body or body[arg.name] is None:
            if not arg.optional:
                raise InvalidArgument(f"{method.name} needs {arg.name!r}")
            args.append(None)
            continue
        args.append(_convert(arg.name, arg.type, body[arg.name]))
    return tuple(args)


def encode_cursor(display_name: str, op_id: str) -> str:
    """The opaque ``next`` of a page: the key of its last item."""
    raw = msgspec.json.encode([display_name, str(op_id)])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, OperationId]:
    """The key an ``after`` cursor names; InvalidArgument if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, op_id = msgspec.json.decode(raw, type=tuple[str, str])
        return name, OperationId(op_id)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidArgument("after must be the 'next' cursor of a previous page") from None
