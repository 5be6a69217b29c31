"""The shape of what the service answers, as the unmodified nmpi client (0.11.2) reads it.

The reference service's documents carry every field, null or empty when unknown; the client
indexes them without checking (job["output_data"]["files"], item["path"], job["log"]). Also:
ids outside the columns' range are "No such job", and unknown submission fields are ignored.
"""

from __future__ import annotations

import functools
import http.server
import ntpath
import posixpath
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
from conftest import Account
from nmpi_job_queue.domain.paths import path_from_url

SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"
PLATFORM = "Demo"  # usage in "hours"
# Every field of the reference's job documents (its pydantic model Job, served without
# response_model_exclude_none).
JOB_FIELDS = {
    "id", "resource_uri", "code", "command", "collab", "user_id", "status",
    "hardware_platform", "hardware_config", "input_data", "output_data", "provenance",
    "resource_usage", "tags", "timestamp_submission", "timestamp_completion", "comments", "log",
}  # fmt: skip
COMMENT_FIELDS = {"id", "job_id", "content", "user_id", "timestamp", "resource_uri"}
PROJECT_FIELDS = {
    "id", "resource_uri", "collab", "owner", "title", "abstract", "description", "status",
    "submission_date", "decision_date", "quotas",
}  # fmt: skip
QUOTA_FIELDS = {"resource_uri", "project", "platform", "units", "limit", "usage"}
SESSION_FIELDS = {
    "id", "resource_uri", "collab", "user_id", "hardware_platform", "hardware_config", "status",
    "timestamp_start", "timestamp_end", "resource_usage",
}  # fmt: skip
Api = Callable[..., httpx.Client]
NewUser = Callable[..., Account]
NewProvider = Callable[[list[str]], str]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A hardware site's file server for outputs (loopback only)."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def run_job(provider: httpx.Client, job_id: int, result: dict[str, Any]) -> None:
    """Play the hardware site: claim the job, run it, report `result` (status, outputs...)."""
    claimed = provider.get(f"/jobs/next/{PLATFORM}")
    while claimed.status_code == 200 and claimed.json()["id"] != job_id:
        claimed = provider.get(f"/jobs/next/{PLATFORM}")  # older jobs of other tests
    assert claimed.status_code == 200, claimed.text
    assert set(claimed.json()) >= JOB_FIELDS
    assert provider.put(f"/jobs/{job_id}", json={"status": "running"}).status_code == 200
    reply = provider.put(f"/jobs/{job_id}", json=result)
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) >= JOB_FIELDS


def job_id_of(uri: str) -> int:
    return int(uri.rsplit("/", 1)[-1])


# --- item 2: finished jobs without outputs, and outputs given by URL only -------------------


@pytest.mark.parametrize("status", ["finished", "error"])
def test_completed_job_without_outputs(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: NewUser,
    new_provider: NewProvider,
    api: Api,
    tmp_path: Path,
    status: str,
) -> None:
    alice = new_user()
    client = client_factory(alice)
    uri = client.submit_job(source=SCRIPT, platform=PLATFORM, collab_id=alice.collab)
    provider = api(api_key=new_provider([PLATFORM]))
    run_job(provider, job_id_of(uri), {"status": status, "log": "no output written\n"})
    # What submit_job(wait=True) returns, and what `nmpi run` then does with it.
    job = client.get_job(uri, with_log=True)
    assert set(job) >= JOB_FIELDS
    assert job["status"] == status
    assert job["log"] == "no output written\n"
    assert job["output_data"] == {"repository": "none", "files": []}
    assert client.download_data(job, local_dir=str(tmp_path / "out")) == []
    assert job["comments"] == []
    assert job["provenance"] is None
    assert job["resource_usage"] is None
    assert job["timestamp_completion"] is not None
    # Listed jobs (completed_jobs(verbose=True)) have the same shape.
    completed = client.completed_jobs(alice.collab, verbose=True)
    [listed] = [j for j in completed if j["id"] == job["id"]]
    assert set(listed) >= JOB_FIELDS
    assert client.download_data(listed, local_dir=str(tmp_path / "out")) == []


def test_fields_of_a_new_job_are_present_and_empty(
    client_factory: Callable[[Account], nmpi.Client], new_user: NewUser, api: Api
) -> None:
    alice = new_user()
    client = client_factory(alice)
    created = api(alice.token).post(
        "/jobs/", json={"code": SCRIPT, "collab": alice.collab, "hardware_platform": PLATFORM}
    )
    assert created.status_code == 201
    job = client.get_job(created.json()["id"], with_log=False)
    expected_empty: dict[str, Any] = {
        "command": None,
        "hardware_config": None,
        "input_data": [],
        "output_data": {"repository": "none", "files": []},
        "provenance": None,
        "resource_usage": None,
        "tags": [],
        "timestamp_completion": None,
        "comments": [],  # the client always asks with_comments=true
        "log": None,  # ... and here with_log=false
    }
    assert {key: job[key] for key in expected_empty} == expected_empty
    assert set(created.json()) >= JOB_FIELDS
    [queued] = [j for j in client.queued_jobs(verbose=True) if j["id"] == job["id"]]
    assert set(queued) >= JOB_FIELDS
    assert queued["log"] is None  # not asked for
    assert queued["comments"] is None


def test_outputs_given_by_url_only_get_a_path(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: NewUser,
    new_provider: NewProvider,
    api: Api,
    site: tuple[Path, str],
    tmp_path: Path,
) -> None:
    alice = new_user()
    client = client_factory(alice)
    uri = client.submit_job(source=SCRIPT, platform=PLATFORM, collab_id=alice.collab)
    root, base = site
    (root / "job_7" / "run 1").mkdir(parents=True)
    (root / "job_7" / "run 1" / "spikes.dat").write_text("spikes\n")
    (root / "escape.txt").write_text("caught\n")  # the site serves /../../escape.txt from here
    (root / "named.txt").write_text("named\n")
    files = [
        {"url": f"{base}/job_7/run%201/spikes.dat"},
        {"url": f"{base}/..%2F..%2Fescape.txt", "size": 7},
        {"url": f"{base}/named.txt", "path": "results/named.txt"},  # a given path is kept
    ]
    result = {"status": "finished", "output_data": {"repository": "Demo site", "files": files}}
    run_job(api(api_key=new_provider([PLATFORM])), job_id_of(uri), result)
    job = client.get_job(uri)
    paths = [item["path"] for item in job["output_data"]["files"]]
    assert paths == ["job_7/run 1/spikes.dat", "escape.txt", "results/named.txt"]
    out = tmp_path / "download" / "here"
    saved = client.download_data(job, local_dir=str(out))
    assert [Path(f).read_text() for f in saved] == ["spikes\n", "caught\n", "named\n"]
    assert all(Path(f).resolve().is_relative_to(out.resolve()) for f in saved)
    assert sorted(p.name for p in (tmp_path / "download").iterdir()) == ["here"]


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://site.example/outputs/job_5/spikes.dat", "outputs/job_5/spikes.dat"),
        ("https://site.example/my%20file.txt?x=1#y", "my file.txt"),
        ("https://site.example/a/../../etc/passwd", "a/etc/passwd"),
        ("https://site.example/%2E%2E/%2e%2E/x", "x"),
        ("https://site.example/..%2F..%2Fx", "x"),
        ("https://site.example/a%5C..%5C..%5Cb", "a/b"),
        ("https://site.example//etc//passwd", "etc/passwd"),
        ("https://site.example/C:/x", "C_/x"),
        ("https://site.example/C%3A%5Cx", "C_/x"),
        ("https://site.example/d/.%20./..../f", "d/f"),
        ("https://site.example/a%00b%0A", "a_b_"),
        ("https://site.example/", "site.example"),
        ("https://site.example", "site.example"),
        ("file:///", "output"),
    ],
)
def test_path_from_url_stays_inside(url: str, path: str) -> None:
    derived = path_from_url(url)
    assert derived == path
    # Joined to a download directory, on POSIX and on Windows, it stays inside it.
    assert posixpath.normpath(posixpath.join("/base", derived)).startswith("/base/")
    assert ntpath.normpath(ntpath.join("C:\\base", derived)).startswith("C:\\base\\")


# --- item 10: ids that no job can have --------------------------------------------------


BAD_IDS = [0, -1, -(2**63), 2**63, 2**70]
PROVIDER_OPERATIONS = {("put", "/jobs/{job_id}"), ("put", "/jobs/{job_id}/log")}
PROVIDER_OPERATIONS |= {("patch", "/jobs/{job_id}/log")}


def test_ids_out_of_range_are_no_such_job(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: NewUser,
    new_provider: NewProvider,
    api: Api,
    server: str,
) -> None:
    alice = new_user()
    client = client_factory(alice)
    for bad in BAD_IDS:
        with pytest.raises(Exception, match=f"No such job: {bad}$"):
            client.get_job(bad)
        with pytest.raises(Exception, match="No such job"):
            client.job_status(bad)
        with pytest.raises(Exception, match="No such job"):
            client.submit_comment(bad, "hello")
        with pytest.raises(Exception, match=f"Error 404: no job with id {bad}"):
            client.add_tags(bad, ["tag"])
    # Every operation on /jobs/{job_id}..., with the credentials it takes.
    user, provider = api(alice.token), api(api_key=new_provider([PLATFORM]))
    operations = [
        (method, path)
        for path, item in httpx.get(f"{server}/openapi.json").json()["paths"].items()
        if path.startswith("/jobs/{job_id}")
        for method in item
    ]
    assert len(operations) >= 14
    for method, path in operations:
        caller = provider if (method, path) in PROVIDER_OPERATIONS else user
        for bad in BAD_IDS:
            url = path.format(job_id=bad, comment_id=1)
            body = b"x" if path.endswith("/log") else b"[]" if "tags" in path else b"{}"
            reply = caller.request(method, url, content=body if method != "get" else None)
            assert reply.status_code == 404, (method, url, reply.text)
            assert reply.json()["detail"] == f"no job with id {bad}", (method, url)


def test_comment_ids_out_of_range_are_not_found(
    new_user: NewUser, new_provider: NewProvider, api: Api
) -> None:
    alice = new_user()
    user = api(alice.token)
    job = user.post(
        "/jobs/", json={"code": SCRIPT, "collab": alice.collab, "hardware_platform": PLATFORM}
    ).json()
    for bad in [0, -1, 2**31, 2**63, 2**70]:
        uri = f"/jobs/{job['id']}/comments/{bad}"
        for reply in (user.put(uri, json={"content": "edited"}), user.delete(uri)):
            assert reply.status_code == 404, reply.text
            assert reply.json()["detail"] == f"no comment {bad}"


# --- item 11: unknown submission fields ---------------------------------------------------


def _warning(reply: httpx.Response) -> list[str]:
    """The field names of a `299 nmpi-job-queue "unknown fields ignored: a, b"` header."""
    match = re.fullmatch(
        r'299 nmpi-job-queue "unknown fields ignored: (.*)"', reply.headers["Warning"]
    )
    assert match, reply.headers["Warning"]
    return match.group(1).split(", ")


def test_unknown_submission_fields_are_ignored(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: NewUser,
    new_provider: NewProvider,
    api: Api,
    server: str,
) -> None:
    alice = new_user()
    client = client_factory(alice)
    user = api(alice.token)
    # What the reference's Job Manager app sends: nothing unknown, no warning.
    manager_app = {
        "hardware_platform": PLATFORM,
        "code": SCRIPT,
        "command": "",
        "hardware_config": {},
        "tags": [],
        "collab": alice.collab,
    }
    reply = user.post("/jobs/", json=manager_app)
    assert reply.status_code == 201, reply.text
    assert "Warning" not in reply.headers
    # A finished job's document, read with the client, edited and submitted again (as with
    # the Job Manager's "edit and resubmit"): the new job is the caller's, and submitted.
    uri = client.submit_job(source=SCRIPT, platform=PLATFORM, collab_id=alice.collab, tags=["v1"])
    run_job(api(api_key=new_provider([PLATFORM])), job_id_of(uri), {"status": "finished"})
    document = client.get_job(uri)
    document.update(user_id="mallory", tags=["v2"])
    resubmitted = client._post(f"{server}/jobs/", document)  # the client's own POST
    assert resubmitted["id"] != document["id"]
    assert resubmitted["status"] == "submitted"
    assert resubmitted["user_id"] == alice.username
    assert resubmitted["tags"] == ["v2"]
    assert resubmitted["timestamp_completion"] is None
    reply = user.post("/jobs/", json=document)
    assert reply.status_code == 201, reply.text
    ignored = set(document) - {
        "code", "command", "collab", "input_data", "hardware_platform", "hardware_config", "tags",
    }  # fmt: skip
    assert _warning(reply) == sorted(ignored, key=list(document).index)
    # Names that are no header material arrive escaped, in ASCII.
    reply = user.post("/jobs/", json={**manager_app, 'say "hi"\n': 1, "état": 2, "x" * 500: 3})
    assert reply.status_code == 201, reply.text
    assert _warning(reply) == ['say \\"hi\\"\\n', "\\u00e9tat", "x" * 60]
    # Known fields are still checked.
    reply = user.post("/jobs/", json={**manager_app, "tags": "not a list", "status": "finished"})
    assert reply.status_code == 422


# --- the other resources ----------------------------------------------------------------


def test_shapes_of_comments_projects_quotas_sessions_collabs(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: NewUser,
    new_provider: NewProvider,
    api: Api,
) -> None:
    alice = new_user(roles={"shared-lab": "viewer"})
    client = client_factory(alice)
    uri = client.submit_job(source=SCRIPT, platform=PLATFORM, collab_id=alice.collab)
    provider = api(api_key=new_provider([PLATFORM]))
    run_job(provider, job_id_of(uri), {"status": "finished"})
    comment = client.submit_comment(uri, "Looks right.")
    assert set(comment) == COMMENT_FIELDS
    assert comment["resource_uri"] == f"{uri}/comments/{comment['id']}"
    # The first job made an accepted test project with a quota; the client lists them.
    [project] = client.resource_requests(alice.collab, status="accepted")
    assert set(project) >= PROJECT_FIELDS
    [quota] = client.quotas(alice.collab)
    assert set(quota) >= QUOTA_FIELDS
    assert quota["project"] == project["resource_uri"]
    new = client.get_resource_request(client.create_resource_request("t", alice.collab, "a"))
    assert set(new) >= PROJECT_FIELDS
    assert (new["submission_date"], new["decision_date"], new["quotas"]) == (None, None, [])
    session = provider.post(
        "/sessions/",
        json={"collab": alice.collab, "user_id": alice.username, "hardware_platform": PLATFORM},
    ).json()
    assert set(session) >= SESSION_FIELDS
    assert (session["hardware_config"], session["timestamp_end"]) == (None, None)
    # Collab ids where the caller may submit, as the reference (and its Job Manager) has them.
    assert api(alice.token).get("/collabs/").json() == [alice.collab]
