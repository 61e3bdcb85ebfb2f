"""Pieces of the patrol API's OpenAPI document that its parts share."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
SESSION: list[dict[str, list[str]]] = [{"session": []}]


def resp(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = schema or ERROR
    return {"description": desc, "content": {"application/json": {"schema": body}}}


def errors(*codes: int) -> dict[str, Any]:
    names = {
        400: "bad input",
        401: "not logged in",
        403: "not allowed, or the CSRF token is missing",
        404: "not found",
        409: "conflict",
        413: "body too large",
        415: "not JSON",
        429: "throttled",
    }
    return {str(c): resp(names[c]) for c in codes}


def query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def csrf() -> dict[str, Any]:
    return {"name": "X-CSRF-Token", "in": "header", "required": True, "schema": {"type": "string"}}


def path_param(name: str, max_length: int = 64) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": max_length},
    }


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}
