"""Request checks that apply to every operation: nothing PostgreSQL cannot store or compare.

Values that pass the routes' own validation yet cannot reach the database, each a 500 if left
alone:
- U+0000 (NUL): PostgreSQL text and jsonb cannot hold it, asyncpg refuses it as a parameter;
- lone UTF-16 surrogates ("\\ud800" in JSON): not encodable as UTF-8, so neither the database
  nor FastAPI's own 422 handler (which echoes the input) can send them;
- NaN, Infinity, 1e999: Python's JSON parser (FastAPI's) accepts them though they are not JSON;
  jsonb refuses them, a float column stores them and the API then answers `null` where it
  promises a number, and FastAPI's 422 handler cannot echo them;
- JSON nested hundreds deep: stored, but then no response can serialize the job (pydantic's
  depth limit), so every later read of it would fail too.
This dependency (installed on the whole app) answers 422 instead.

Every 422 (these and FastAPI's own) is written by `validation_failed`: `detail` is one readable
string naming each field and its rule, as the nmpi client shows it; `errors` lists them for
programs. Neither repeats the offending value, and both are bounded: FastAPI's default reply
echoed every input, so a 10 MB field made a 10 MB error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.params import Path, Query
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from . import limits

Loc = tuple[str | int, ...]
MAX_DEPTH = limits.JSON_MAX_DEPTH


def _problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if "\x00" in text:
        return "NUL characters (U+0000) are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate characters are not allowed (not encodable as UTF-8)"
    return None


def _error(loc: Loc, message: str) -> dict[str, Any]:
    # No "input": echoing the offending value is what makes FastAPI's own handler fail.
    return {"type": "value_error", "loc": list(loc), "msg": message}


class _NotJsonError(ValueError):
    """NaN, Infinity or a number too large for a double: accepted by Python, not JSON."""


def _no_constant(name: str) -> float:
    raise _NotJsonError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJsonError(f"{text} is out of range for a number")
    return value


def _find_problem(value: Any, loc: Loc) -> tuple[Loc, str] | None:
    """The first string (or object key) in a decoded JSON value that cannot be stored."""
    if len(loc) > MAX_DEPTH:
        return loc[:3], f"JSON nested deeper than {MAX_DEPTH} levels is not accepted"
    if isinstance(value, str):
        problem = _problem(value)
        return (loc, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _problem(key)
            if problem:
                return (*loc, "<key>"), problem
            found = _find_problem(item, (*loc, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_problem(item, (*loc, index))
            if found is not None:
                return found
    return None


async def reject_unstorable_values(request: Request) -> None:
    errors: list[dict[str, Any]] = []
    route = request.scope.get("route")
    declared: set[str] = set()
    if isinstance(route, APIRoute):
        declared = {
            field.alias
            for field in get_flat_params(route.dependant)
            if isinstance(field.field_info, Path | Query)
        }
    for name, value in request.path_params.items():
        problem = _problem(value) if isinstance(value, str) else None
        if problem:
            errors.append(_error(("path", name), problem))
    for name, value in request.query_params.multi_items():
        problem = _problem(value) if name in declared else None
        if problem:
            errors.append(_error(("query", name), problem))
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = await request.body()
        if body and "json" in request.headers.get("content-type", ""):
            try:
                decoded = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
            except _NotJsonError as error:
                errors.append(_error(("body",), str(error)))
            except RecursionError:
                errors.append(_error(("body",), f"JSON nested deeper than {MAX_DEPTH} levels"))
            except ValueError:
                pass  # not JSON (or not UTF-8): FastAPI's own parsing reports it
            else:
                found = _find_problem(decoded, ("body",))
                if found is not None:
                    errors.append(_error(*found))
    if errors:
        raise RequestValidationError(errors)


# --- the 422 reply --------------------------------------------------------------------------


def _printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, encodable as UTF-8 (a key may hold a lone surrogate)."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("utf-8", "replace").decode("utf-8")


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [
        part if isinstance(part, int) else _printable(str(part), limits.LOC_PART_MAX_CHARS)
        for part in loc
    ]


def _where(loc: Sequence[str | int]) -> str:
    """('body', 'input_data', 2, 'url') -> 'body.input_data[2].url'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text or "request"


def _describe(error: dict[str, Any]) -> tuple[list[str | int], str]:
    """(location, message) of one validation error, without the value it refused."""
    kind = error.get("type")
    loc = _loc(error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":  # FastAPI's: loc is ("body", position of the error)
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        loc, message = ["body"], f"invalid JSON{where}: {ctx.get('error', 'cannot be parsed')}"
    elif kind == "string_too_long" and isinstance(value, str):
        message += f" (got {len(value)})"
    return loc, _printable(message, limits.ERROR_MESSAGE_MAX_CHARS)


async def validation_failed(request: Request, error: Exception) -> JSONResponse:
    """The app's RequestValidationError handler (422)."""
    assert isinstance(error, RequestValidationError)
    found = error.errors()
    shown = found[: limits.ERRORS_MAX]
    described = [_describe(item) for item in shown]
    detail = "; ".join(f"{_where(loc)}: {message}" for loc, message in described)
    if len(found) > len(shown):
        detail += f"; and {len(found) - len(shown)} more"
    errors = [
        {"loc": loc, "msg": message, "type": _printable(str(item.get("type")), 50)}
        for item, (loc, message) in zip(shown, described, strict=True)
    ]
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)
