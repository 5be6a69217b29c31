"""The unmodified nmpi client (hbp-neuromorphic-platform 0.11.2) against the live service.

A test provider thread plays the hardware site: it claims jobs, reports progress and publishes
output files on a local HTTP server, from which the client downloads them.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
from conftest import Account

SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup(timestep=1.0)\nsim.run(100.0)\nsim.end()\n"


@pytest.fixture
def output_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A hardware site's file server for job outputs (loopback only)."""
    root = tmp_path / "outputs"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class TestProvider(threading.Thread):
    """Claims jobs of one platform and runs them the way the SpiNNaker back-end reports them."""

    __test__ = False  # not a test class

    def __init__(self, server: str, api_key: str, platform: str, outputs: tuple[Path, str]) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=server, headers={"x-api-key": api_key}, timeout=10)
        self.platform = platform
        self.out_dir, self.out_url = outputs
        self.stop = threading.Event()
        self.done: list[int] = []

    def run(self) -> None:
        while not self.stop.is_set():
            reply = self.http.get(f"/jobs/next/{self.platform}")
            if reply.status_code == 404:
                self.stop.wait(0.2)
                continue
            reply.raise_for_status()
            self.execute(reply.json())

    def execute(self, job: dict[str, Any]) -> None:
        uri = f"/jobs/{job['id']}"
        self.http.put(uri, json={"status": "running"}).raise_for_status()
        self.http.put(f"{uri}/log", content=f"running job {job['id']}\n").raise_for_status()
        data = f"spikes of job {job['id']}\n".encode()
        name = f"job_{job['id']}/spikes.dat"
        (self.out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (self.out_dir / name).write_bytes(data)
        update = {
            "status": "finished",
            "output_data": {
                "repository": "SpiNNaker Manchester storage",
                "files": [
                    {
                        "url": f"{self.out_url}/{name}",
                        "path": name,
                        "size": len(data),
                        "hash": hashlib.sha1(data).hexdigest(),
                        "content_type": "text/plain",
                    }
                ],
            },
            "provenance": {"spynnaker_version": "7.0.0 (emulated)"},
            "resource_usage": {"value": 0.01, "units": "core-hours"},
        }
        self.http.patch(f"{uri}/log", content="done\n").raise_for_status()
        self.http.put(uri, json=update).raise_for_status()
        self.done.append(job["id"])


@pytest.fixture
def provider(
    server: str, new_provider: Callable[[list[str]], str], output_site: tuple[Path, str]
) -> Iterator[TestProvider]:
    thread = TestProvider(server, new_provider(["SpiNNaker"]), "SpiNNaker", output_site)
    thread.start()
    yield thread
    thread.stop.set()
    thread.join(timeout=5)


def test_client_identity(
    client_factory: Callable[[Account], nmpi.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    client = client_factory(alice)
    assert client.username == alice.username
    assert alice.collab in client.my_collabs()
    info = client.get_server_info()
    assert info["version"] == "3"


def test_submit_wait_and_read_results(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: Callable[..., Account],
    provider: TestProvider,
    tmp_path: Path,
) -> None:
    alice = new_user()
    client = client_factory(alice)
    job = client.submit_job(
        source=SCRIPT, platform="SpiNNaker", collab_id=alice.collab, tags=["contract"], wait=True
    )
    assert job["status"] == "finished"
    assert job["id"] in provider.done
    assert job["log"] == f"running job {job['id']}\ndone\n"
    assert client.job_status(job["id"]) == "finished"
    assert client.get_job(job["resource_uri"], with_log=True)["log"].endswith("done\n")
    completed = client.completed_jobs(alice.collab)
    assert job["resource_uri"] in completed
    files = client.download_data(job, local_dir=str(tmp_path / "download"))
    assert Path(files[0]).read_text() == f"spikes of job {job['id']}\n"
    assert job["resource_usage"] == {"value": 0.01, "units": "core-hours"}


def test_queue_tags_and_comments(
    client_factory: Callable[[Account], nmpi.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    client = client_factory(alice)
    # No provider runs BrainScaleS here: the job stays in the queue.
    uri = client.submit_job(source=SCRIPT, platform="BrainScaleS", collab_id=alice.collab)
    assert uri in client.queued_jobs()
    assert client.job_status(uri) == "submitted"
    assert sorted(client.add_tags(uri, ["alpha", "beta"])) == ["alpha", "beta"]
    assert client.remove_tags(uri, "alpha") is None  # the client returns nothing here
    assert client.get_job(uri, with_log=False)["tags"] == ["beta"]
    # Comments are only for completed jobs: the client refuses before calling the API...
    assert "Comment not submitted" in client.submit_comment(uri, "too early")
    with pytest.raises(Exception, match="No such job"):
        client.get_job(999_999_999)


def test_comment_on_finished_job(
    client_factory: Callable[[Account], nmpi.Client],
    new_user: Callable[..., Account],
    provider: TestProvider,
) -> None:
    alice = new_user()
    client = client_factory(alice)
    job = client.submit_job(source=SCRIPT, platform="SpiNNaker", collab_id=alice.collab, wait=True)
    comment = client.submit_comment(job["id"], "Looks right.")
    assert comment["content"] == "Looks right."
    assert comment["user_id"] == alice.username
    assert [c["content"] for c in client.get_job(job["id"])["comments"]] == ["Looks right."]


def test_resource_requests_and_quotas(
    client_factory: Callable[[Account], nmpi.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    client = client_factory(alice)
    uri = client.create_resource_request(
        "Cortical model", alice.collab, "A model of the cortex", description="Large"
    )
    request = client.get_resource_request(uri)
    assert request["status"] == "in preparation"
    client.edit_resource_request(uri, title="Cortical model v2", submit=True)
    edited = client.get_resource_request(uri)
    assert edited["title"] == "Cortical model v2"
    assert edited["status"] == "under review"
    under_review = client.resource_requests(alice.collab, status="under review")
    assert [r["resource_uri"] for r in under_review] == [uri]
    # Submitting right away: the 0.11.2 client reads `context` from the reply.
    submitted = client.create_resource_request("Second", alice.collab, "x", submit=True)
    assert client.get_resource_request(submitted)["status"] == "under review"
    # The first job in a collab gets an accepted test project with a quota.
    client.submit_job(source=SCRIPT, platform="BrainScaleS-2", collab_id=alice.collab)
    quotas = client.quotas(alice.collab)
    assert [(q["platform"], q["units"]) for q in quotas] == [("BrainScaleS-2", "chip-hours")]
