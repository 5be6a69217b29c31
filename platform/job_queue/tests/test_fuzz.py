"""Property-based fuzzing of the live server from its own /openapi.json (schemathesis).

Every operation gets generated requests (valid and invalid ones) with real credentials: once with
a user's Bearer token (all but the providers' operations), once with a provider's API key (all
operations). Half of the generated ids are swapped for those of a seeded job and comment, so
that more than 404s are exercised. Checks:
never a 5xx, and every response (status code, body) is one the OpenAPI document declares.
Bounded and derandomized so that the file runs in a few minutes, with the same cases every run.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from conftest import Account
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
Case = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
AUTH_HEADERS = ("authorization", "x-api-key")
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: report as found
)


@pytest.fixture(scope="module")
def api_schema(server: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    schema.config.update(base_url=server)
    return schema


@pytest.fixture
def seeded(
    server: str,
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
) -> dict[str, Any]:
    """A user with a job (and a comment on it) and a provider serving its platform."""
    user = new_user()
    key = new_provider(["Test"])
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {user.token}"}) as client:
        job = client.post(
            "/jobs/",
            json={"code": "print(1)", "collab": user.collab, "hardware_platform": "Test"},
        ).json()
        comment = client.post(f"/jobs/{job['id']}/comments/", json={"content": "hello"}).json()
    return {"user": user, "key": key, "job_id": job["id"], "comment_id": comment["id"]}


def _send(
    case: Case,
    headers: dict[str, str],
    seeded: dict[str, Any],
    seen: defaultdict[str, Counter[int]],
) -> None:
    # The operations declare the credentials as optional header parameters: drop generated
    # ones, so that every case carries the real credentials given here.
    for name in [k for k in case.headers or {} if k.lower() in AUTH_HEADERS]:
        del case.headers[name]
    # Aim half of the cases at objects that exist, so that more than 404s are exercised.
    params = case.path_parameters or {}
    for name in ("job_id", "comment_id"):
        value = params.get(name)
        if isinstance(value, int) and value % 2 == 0:
            params[name] = seeded[name]
    if isinstance(params.get("platform"), str) and len(params["platform"]) % 2 == 0:
        params["platform"] = "Test"
    # ... and half of the generated submissions at the user's collab and a real platform, so
    # that they get past those checks and reach the database.
    body = case.body
    if isinstance(body, dict) and "collab" in body and zlib.crc32(repr(body).encode()) % 2:
        body["collab"] = seeded["user"].collab
        body["hardware_platform"] = "Test"
    # ... and half of the queries naming a collab (code archives) at the user's.
    query = case.query or {}
    if isinstance(query.get("collab"), str) and len(query["collab"]) % 2 == 0:
        query["collab"] = seeded["user"].collab
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    seen[case.operation.label][response.status_code] += 1


def fuzz(
    schema: schemathesis.BaseSchema,
    select: Callable[[Operation], bool],
    headers: dict[str, str],
    seeded: dict[str, Any],
) -> None:
    """Run every selected operation with positive and negative cases; fail with all findings."""
    findings: list[str] = []
    seen: defaultdict[str, Counter[int]] = defaultdict(Counter)  # statuses reached, for -s
    ran = 0
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:  # an operation whose OpenAPI description schemathesis cannot use
            findings.append(f"invalid operation in /openapi.json: {result.err()}")
    # Deletions last, so that they do not remove the seeded objects before the rest ran.
    operations.sort(key=lambda op: (op.method.upper() == "DELETE", op.path == "/jobs/{job_id}"))
    for operation in operations:
        if not select(operation):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ_SETTINGS
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Case) -> None:
                _send(case, headers, seeded, seen)

            ran += 1
            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as error:
                finding = f"{operation.label} ({mode.value}): {error}"
                findings.append(finding)
    for label, statuses in seen.items():
        print(f"{label}: {dict(sorted(statuses.items()))}")
    assert ran > 0
    assert not findings, "\n\n".join(findings)


def test_api_as_user(api_schema: schemathesis.BaseSchema, seeded: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {seeded['user'].token}"}
    fuzz(api_schema, lambda op: "providers" not in (op.tags or []), headers, seeded)


def test_api_as_provider(api_schema: schemathesis.BaseSchema, seeded: dict[str, Any]) -> None:
    # Every operation: besides their own (tag "providers"), providers read jobs, run sessions
    # and update quotas; the users' operations must refuse them cleanly (403).
    fuzz(api_schema, lambda op: True, {"x-api-key": seeded["key"]}, seeded)
