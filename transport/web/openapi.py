"""``/openapi.json`` and ``/docs``: the gateway's routes, derived from the method table.

The schemas of arguments and values come from the model's msgspec types
(``msgspec.json.schema_components``), the routes from ``actors.calls.METHODS``, so the
description cannot drift from what the gateway accepts (tests/web/test_gateway.py checks
every method has its path and every path answers).
"""

from __future__ import annotations

import functools
import html
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from actors.calls import METHODS, Method
from actors.model import (
    CompletionEntry,
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationStatus,
)
from transport.web.errors import STATUS

__all__ = ["docs_page", "openapi_json", "openapi_spec"]

_REF = "#/components/schemas/{name}"
_ERROR = {"$ref": "#/components/responses/Error"}
_REGISTRY = {
    "name": "registry",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
    "description": "the registry's name",
}


def _hook(kind: type) -> dict[str, Any]:
    if kind is OperationId:
        return {"type": "string", "format": "uuid", "description": "an operation id (UUIDv7)"}
    raise NotImplementedError


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _ERROR for s in sorted(set(statuses))}


def _method_path(m: Method, schemas: dict[Any, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {a.name: schemas[id(a)] for a in m.args}
    required = [a.name for a in m.args if not a.optional]
    if m.future:
        props["timeout"] = {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30,
            "description": "seconds to hold the request for the final value (408 after)",
        }
    value = schemas[("reply", m.name)]
    if m.name == "register_operation":
        value = {
            "type": "object",
            "properties": {"id": {"type": "string", "format": "uuid"}},
            "required": ["id"],
        }
    statuses = [400, 401, 404, 413, 422, 429, 500, 503]
    if m.changes_state:
        statuses.append(409)
    if m.future:
        statuses += [408, 409]
    if m.admin:
        statuses.append(403)
    what = "changes state" if m.changes_state else "read-only"
    held = "; holds the request until the future settles" if m.future else ""
    return {
        "post": {
            "operationId": m.name,
            "summary": f"{m.name} ({what}{held})",
            "tags": ["methods"],
            "parameters": [_REGISTRY],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": props,
                            "required": required,
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "the value",
                    "content": {"application/json": {"schema": value}},
                },
                **_errors(*statuses),
            },
        }
    }


def _get(summary: str, params: list[dict[str, Any]], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["reads"],
            "parameters": params,
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": value}}},
                **_errors(401, 404, 422, 503),
            },
        }
    }


def _query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


@functools.cache
def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    keys: list[Any] = []
    types: list[Any] = []
    for m in METHODS.values():
        for a in m.args:
            keys.append(id(a))
            types.append(a.type)
        keys.append(("reply", m.name))
        types.append(m.reply)
    types += [CompletionEntry, OperationLifecycleSnapshot, OperationStatus, OperationKind]
    out, components = msgspec.json.schema_components(types, schema_hook=_hook, ref_template=_REF)
    schemas = dict(zip(keys, out, strict=False))
    snap = {"$ref": _REF.format(name="OperationLifecycleSnapshot")}
    paths: dict[str, Any] = {}
    base = "/v1/registries/{registry}"
    paths["/v1/registries"] = _get(
        "the registries this gateway offers",
        [],
        {
            "type": "object",
            "properties": {"registries": {"type": "array", "items": {"type": "string"}}},
        },
    )
    paths[f"{base}/operations"] = _get(
        "one page of operations, by name (display_name, id), newest or oldest first",
        [
            _REGISTRY,
            _query("status", {"$ref": _REF.format(name="OperationStatus")}, "only this status"),
            _query("kind", {"$ref": _REF.format(name="OperationKind")}, "only this kind"),
            _query("owner", {"type": "string"}, "only this owner session"),
            _query("name", {"type": "string"}, "only names starting with this"),
            _query("order", {"enum": ["name", "newest", "oldest"], "default": "name"}, "the order"),
            _query(
                "limit", {"type": "integer", "minimum": 1, "maximum": 1024, "default": 100}, "rows"
            ),
            _query("after", {"type": "string"}, "the previous page's `next`"),
        ],
        {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": snap},
                "next": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "watermark": {"type": "integer"},
            },
        },
    )
    paths[base + "/operations/{op_id}"] = _get(
        "one operation",
        [
            _REGISTRY,
            {"name": "op_id", "in": "path", "required": True, "schema": _hook(OperationId)},
        ],
        snap,
    )
    paths[f"{base}/stats"] = _get(
        "the feed's watermark and what retention dropped",
        [_REGISTRY],
        {
            "type": "object",
            "properties": {
                "watermark": {"type": "integer"},
                "dropped_through": {"type": "integer"},
            },
        },
    )
    paths[f"{base}/feed"] = {
        "get": {
            "summary": "completions as Server-Sent Events (docs/http.md §3)",
            "tags": ["reads"],
            "parameters": [
                _REGISTRY,
                _query("after", {"type": "integer", "minimum": 0}, "start after this seq"),
                _query("start", {"enum": ["now", "oldest"]}, "where to start without `after`"),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "integer"},
                },
            ],
            "responses": {
                "200": {
                    "description": "`event: completion` per entry (`id` = seq), `event: gap`, `event: hello`",
                    "content": {
                        "text/event-stream": {
                            "schema": {"$ref": _REF.format(name="CompletionEntry")}
                        }
                    },
                },
                **_errors(401, 404, 422),
            },
        }
    }
    for m in METHODS.values():
        paths[base + "/" + m.name] = _method_path(m, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "opsreg gateway",
            "version": "1",
            "description": "Every registry method over JSON, reads as GETs, the feed as SSE "
            '(docs/http.md). Errors are `{"error": {"class", "message", "fields"}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "an error: " + ", ".join(f"{k} {v}" for k, v in STATUS.items()),
                    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                }
            },
        },
        "security": [{}, {"bearer": []}],
    }


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "class": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object"},
            },
            "required": ["class", "message", "fields"],
        }
    },
    "required": ["error"],
}


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_spec())


def _schema_text(schema: Any) -> str:
    return html.escape(msgspec.json.encode(schema).decode()[:400])


@functools.cache
def _docs_html() -> str:
    spec = openapi_spec()
    rows = []
    for path, item in spec["paths"].items():
        for verb, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            props = body.get("schema", {}).get("properties", {})
            required = set(body.get("schema", {}).get("required", []))
            args = "".join(
                f"<li><code>{html.escape(k)}</code>{'' if k in required else ' <i>(optional)</i>'}: "
                f"<code>{_schema_text(v)}</code></li>"
                for k, v in props.items()
            )
            params = "".join(
                f"<li><code>{html.escape(p['name'])}</code> ({p['in']})</li>"
                for p in op.get("parameters", [])
            )
            rows.append(
                f"<section><h3><span class=verb>{verb.upper()}</span> <code>{html.escape(path)}</code></h3>"
                f"<p>{html.escape(op['summary'])}</p><ul>{params}{args}</ul>"
                f"<p>status: {', '.join(html.escape(s) for s in op['responses'])}</p></section>"
            )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>opsreg gateway API</title>"
        "<style>body{font:14px system-ui;max-width:960px;margin:2em auto;padding:0 1em}"
        "section{border-top:1px solid #ddd;padding:.3em 0}.verb{color:#06c}"
        "code{background:#f4f4f4;padding:0 .2em}</style></head><body>"
        "<h1>opsreg gateway API</h1><p>The machine-readable form is "
        "<a href=/openapi.json>/openapi.json</a>; the dashboard is at <a href=/>/</a>.</p>"
        + "".join(rows)
        + "</body></html>"
    )


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_docs_html())
