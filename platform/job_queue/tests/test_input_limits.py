"""Bounded input (limits.py, docs/limits.md) and bounded, readable error replies.

Through the unmodified nmpi client where it can send the request, over HTTP otherwise.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
from conftest import Account
from nmpi_job_queue import limits

SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"
PLATFORM = "Spikey"  # a queue no other test module feeds
Api = Callable[..., httpx.Client]
NewUser = Callable[..., Account]


def client_error(call: Callable[[], object]) -> str:
    """The message of the exception the nmpi client raises for an error reply."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the client raises bare Exception
        call()
    return str(caught.value)


def jobs_of(api: Api, account: Account) -> list[dict[str, Any]]:
    reply = api(account.token).get("/jobs/", params={"collab": account.collab})
    jobs: list[dict[str, Any]] = reply.json()
    return jobs


def test_client_reads_which_field_broke_which_rule(
    api: Api, new_user: NewUser, client_factory: Callable[[Account], nmpi.Client]
) -> None:
    alice = new_user()
    client = client_factory(alice)
    tags = [f"tag{i}" for i in range(5000)]
    message = client_error(
        lambda: client.submit_job(SCRIPT, PLATFORM, alice.collab, tags=tags),
    )
    assert (
        message
        == "Error 422: body.tags: List should have at most 100 items after validation, not 5000"
    )
    code = "x" * (limits.CODE_MAX_CHARS + 1)
    message = client_error(lambda: client.submit_job(code, PLATFORM, alice.collab))
    assert message == (
        "Error 422: body.code: String should have at most 1000000 characters (got 1000001)"
    )
    config = {"calibration": "c" * limits.HARDWARE_CONFIG_MAX_BYTES}
    message = client_error(lambda: client.submit_job(SCRIPT, PLATFORM, alice.collab, config))
    assert message.startswith("Error 422: body.hardware_config: at most 65536 bytes as JSON (got ")
    title = "t" * (limits.TITLE_MAX_CHARS + 1)
    message = client_error(lambda: client.create_resource_request(title, alice.collab, "a"))
    assert message == "Error 422: body.title: String should have at most 500 characters (got 501)"
    assert jobs_of(api, alice) == []
    # At the limits, accepted.
    tags = [f"tag{i}" for i in range(limits.TAGS_MAX)]
    uri = client.submit_job("y" * limits.CODE_MAX_CHARS, PLATFORM, alice.collab, tags=tags)
    assert len(client.get_job(uri, with_log=False)["tags"]) == limits.TAGS_MAX


def test_client_sees_413_for_huge_bodies(
    api: Api, new_user: NewUser, client_factory: Callable[[Account], nmpi.Client]
) -> None:
    alice = new_user()
    client = client_factory(alice)
    message = client_error(lambda: client.submit_job("x" * 10_000_000, PLATFORM, alice.collab))
    assert message.startswith("Error 413: request body too large: at most 4194304 bytes (4 MiB)")
    assert len(message) < 200
    config = {"weights": [0.5] * 6_000_000}  # 30 MB of JSON
    message = client_error(lambda: client.submit_job(SCRIPT, PLATFORM, alice.collab, config))
    assert message.startswith("Error 413: request body too large")
    assert jobs_of(api, alice) == []


def test_413_is_answered_before_the_body_is_read(server: str) -> None:
    """A Content-Length over the limit gets its 413 while the body has not even been sent."""
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(
            b"POST /jobs/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n{"
        )
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        assert reply.status == 413
        assert json.loads(reply.read())["detail"] == (
            "request body too large: at most 4194304 bytes (4 MiB) are accepted here, "
            "it has 1000000000"
        )


def test_chunked_body_is_cut_at_the_limit(api: Api, new_user: NewUser) -> None:
    alice = new_user()

    def body() -> Iterator[bytes]:  # a generator: httpx sends it chunked, without a length
        yield b'{"code": "'
        for _ in range(20):
            yield b"x" * limits.MIB
        yield b'", "collab": "%s", "hardware_platform": "Spikey"}' % alice.collab.encode()

    reply = api(alice.token).post("/jobs/", content=body())
    assert reply.request.headers["transfer-encoding"] == "chunked"
    assert reply.status_code == 413
    assert reply.json() == {
        "detail": "request body too large: at most 4194304 bytes (4 MiB) are accepted here, "
        "it has more"
    }
    assert jobs_of(api, alice) == []


def test_url_over_8_kib_is_refused(api: Api, new_user: NewUser) -> None:
    reply = api(new_user().token).get("/jobs/", params=[("tags", "t" * 100)] * 100)
    assert reply.status_code == 414
    assert "at most 8192 bytes" in reply.json()["detail"]


def test_tags_per_job_are_bounded(
    new_user: NewUser, client_factory: Callable[[Account], nmpi.Client]
) -> None:
    alice = new_user()
    client = client_factory(alice)
    uri = client.submit_job(SCRIPT, PLATFORM, alice.collab, tags=[f"a{i}" for i in range(60)])
    client.add_tags(uri, [f"b{i}" for i in range(40)])
    message = client_error(lambda: client.add_tags(uri, ["one-more"]))
    job_id = uri.rsplit("/", 1)[1]
    assert message == (
        f"Error 400: a job has at most 100 tags (job {job_id} has 100, this would make 101)"
    )
    client.add_tags(uri, ["a1", "b1"])  # tags it already has: nothing grows
    assert len(client.get_job(uri, with_log=False)["tags"]) == 100


def _claimed_job(api: Api, account: Account, provider: httpx.Client) -> int:
    user = api(account.token)
    job = user.post(
        "/jobs/", json={"code": SCRIPT, "collab": account.collab, "hardware_platform": PLATFORM}
    ).json()
    claimed = provider.get(f"/jobs/next/{PLATFORM}")
    while claimed.status_code == 200 and claimed.json()["id"] != job["id"]:
        claimed = provider.get(f"/jobs/next/{PLATFORM}")  # older jobs of earlier runs
    assert claimed.status_code == 200, claimed.text
    job_id: int = job["id"]
    return job_id


def test_provider_updates_are_bounded(
    api: Api, new_user: NewUser, new_provider: Callable[[list[str]], str]
) -> None:
    alice = new_user()
    provider = api(api_key=new_provider([PLATFORM]))
    job_id = _claimed_job(api, alice, provider)
    uri = f"/jobs/{job_id}"

    def refused(update: dict[str, Any], status: int = 422) -> str:
        reply = provider.put(uri, json=update)
        assert reply.status_code == status, reply.text
        detail: str = reply.json()["detail"]
        return detail

    provenance = {"trace": "p" * limits.PROVENANCE_MAX_BYTES}
    assert refused({"provenance": provenance}).startswith(
        "body.provenance: at most 262144 bytes as JSON (got "
    )
    usage = {"value": 1e13, "units": "hours"}
    assert refused({"resource_usage": usage}) == (
        "body.resource_usage.value: Input should be less than or equal to 1000000000000"
    )
    item = {"url": "https://site.example.org/" + "u" * limits.URL_MAX_CHARS, "path": "p"}
    detail = refused({"output_data": {"repository": "r", "files": [item]}})
    assert detail == "body.output_data.files[0].url: URL should have at most 4096 characters"
    files = [
        {"url": f"https://site.example.org/{i}", "path": f"f{i}"}
        for i in range(limits.OUTPUT_ITEMS_MAX + 1)
    ]
    detail = refused({"output_data": {"repository": "r", "files": files}}, 400)
    assert detail.startswith("output_data.files: a job has at most 1000 output files")
    # Over several PUTs too; a repeated PUT of the items it has is still accepted.
    first = {"output_data": {"repository": "r", "files": files[:-1]}}
    assert provider.put(uri, json=first).status_code == 200
    assert provider.put(uri, json=first).status_code == 200
    detail = refused({"output_data": {"repository": "r", "files": files[-1:]}}, 400)
    assert "(this update would make 1001)" in detail


def test_a_jobs_log_is_bounded(
    api: Api, new_user: NewUser, new_provider: Callable[[list[str]], str]
) -> None:
    alice = new_user()
    provider = api(api_key=new_provider([PLATFORM]))
    job_id = _claimed_job(api, alice, provider)
    log = f"/jobs/{job_id}/log"
    big = "l" * (limits.LOG_MAX_CHARS - 10)
    assert provider.put(log, content=big).status_code == 200
    assert provider.patch(log, content="0123456789").status_code == 200  # exactly at the limit
    over = provider.patch(log, content="!")
    assert over.status_code == 413
    assert over.json()["detail"] == (
        f"a job's log has at most 5000000 characters (job {job_id}'s would have 5000001): "
        "send its tail, and publish the whole log as an output file"
    )
    assert provider.put(log, content=big + "x" * 11).status_code == 413
    as_field = provider.put(f"/jobs/{job_id}", json={"log": big + "x" * 11})
    assert as_field.status_code == 422
    assert as_field.json()["detail"] == (
        "body.log: String should have at most 5000000 characters (got 5000001)"
    )
    # The log routes take bodies over 4 MiB (a log), but not without bound.
    too_big = provider.put(log, content=b"l" * (limits.MAX_LOG_BODY_BYTES + 1))
    assert too_big.status_code == 413
    assert "at most 16777216 bytes (16 MiB)" in too_big.json()["detail"]
    reply = api(alice.token).get(f"/jobs/{job_id}", params={"with_log": "true"})
    assert len(reply.json()["log"]) == limits.LOG_MAX_CHARS


def test_sessions_projects_and_comments_are_bounded(
    api: Api, new_user: NewUser, new_provider: Callable[[list[str]], str]
) -> None:
    alice = new_user()
    provider = api(api_key=new_provider([PLATFORM]))
    user = api(alice.token)
    config = {"c": "c" * limits.HARDWARE_CONFIG_MAX_BYTES}
    reply = provider.post(
        "/sessions/",
        json={
            "collab": alice.collab,
            "user_id": alice.username,
            "hardware_platform": PLATFORM,
            "hardware_config": config,
        },
    )
    assert reply.status_code == 422
    assert reply.json()["detail"].startswith("body.hardware_config: at most 65536 bytes")
    reply = user.post(
        "/projects/", json={"collab": alice.collab, "title": "t", "abstract": "a" * 10_001}
    )
    assert reply.status_code == 422
    assert reply.json()["detail"] == (
        "body.abstract: String should have at most 10000 characters (got 10001)"
    )
    job_id = _claimed_job(api, alice, provider)
    reply = user.post(f"/jobs/{job_id}/comments/", json={"content": "c" * 10_001})
    assert reply.status_code == 422
    assert reply.json()["detail"] == (
        "body.content: String should have at most 10000 characters (got 10001)"
    )


def test_422_never_echoes_the_input_and_is_bounded(api: Api, new_user: NewUser) -> None:
    user = api(new_user().token)
    # 100 invalid tags: 100 errors, of which the reply lists the first 20.
    reply = user.post(
        "/jobs/",
        json={"code": SCRIPT, "collab": "c", "hardware_platform": PLATFORM, "tags": ["x"] * 100},
    )
    assert reply.status_code == 422
    body = reply.json()
    assert set(body) == {"detail", "errors"}
    assert len(body["errors"]) == limits.ERRORS_MAX
    assert body["errors"][0] == {
        "loc": ["body", "tags", 0],
        "msg": "String should have at least 2 characters",
        "type": "string_too_short",
    }
    assert body["detail"].startswith("body.tags[0]: String should have at least 2 characters; ")
    assert body["detail"].endswith("; and 80 more")
    assert len(reply.content) < 10_000
    # A 1 MB key nor a 3 MB value come back.
    secret = "s" * 3_000_000
    reply = user.post("/projects/", json={"k" * 1_000_000: 1, "title": secret})
    assert reply.status_code == 422
    assert len(reply.content) < 5_000
    assert "sss" not in reply.text
    errors = reply.json()["errors"]
    assert {
        "loc": ["body", "k" * 100 + "..."],
        "msg": "Extra inputs are not permitted",
        "type": "extra_forbidden",
    } in errors
    # Values refused before validation (validation.py) come out the same way.
    reply = user.post(
        "/jobs/", json={"code": "print(1)\x00", "collab": "c", "hardware_platform": "x"}
    )
    assert reply.status_code == 422
    assert reply.json() == {
        "detail": "body.code: NUL characters (U+0000) are not allowed",
        "errors": [
            {
                "loc": ["body", "code"],
                "msg": "NUL characters (U+0000) are not allowed",
                "type": "value_error",
            }
        ],
    }
    reply = user.post("/jobs/", content=b'{"code": ', headers={"content-type": "application/json"})
    assert reply.status_code == 422
    assert reply.json()["detail"].startswith("body: invalid JSON at character 9: ")
    assert json.dumps(reply.json()).count("code") == 0
