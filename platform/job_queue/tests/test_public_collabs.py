"""Public collabs (`nmpi-job-queue collab add --public`): every signed-in user reads their jobs,
with the unmodified nmpi client and on every read route; changing them still needs a role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
from conftest import Account, run_admin
from nmpi_job_queue import admin

SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"
Api = Callable[..., httpx.Client]


def make_public(database_url: str, collab: str) -> None:
    run_admin(database_url, lambda s: admin.add_collab(s, collab, title="Open lab", public=True))


def finish(provider: httpx.Client, job_id: int) -> None:
    """What a hardware site reports at the end of a SpiNNaker job."""
    update: dict[str, Any] = {
        "status": "finished",
        "output_data": {
            "repository": "SpiNNaker Manchester storage",
            "files": [{"url": f"https://spinnaker.example.org/{job_id}/spikes.dat"}],
        },
        "resource_usage": {"value": 0.01, "units": "core-hours"},
    }
    provider.put(f"/jobs/{job_id}", json=update).raise_for_status()
    provider.put(f"/jobs/{job_id}/log", content="done\n").raise_for_status()


@pytest.fixture
def public_job(
    database_url: str,
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
    api: Api,
    client_factory: Callable[[Account], nmpi.Client],
) -> tuple[Account, int]:
    """A finished, tagged and commented job in a public collab, and the collab's owner."""
    owner = new_user()
    make_public(database_url, owner.collab)
    client = client_factory(owner)
    uri = client.submit_job(
        source=SCRIPT, platform="SpiNNaker", collab_id=owner.collab, tags=["open"]
    )
    job_id = int(uri.rsplit("/", 1)[-1])
    finish(api(api_key=new_provider(["SpiNNaker"])), job_id)
    client.submit_comment(job_id, "Published with the paper.")
    return owner, job_id


def test_anyone_reads_a_public_collabs_jobs_with_the_client(
    public_job: tuple[Account, int],
    new_user: Callable[..., Account],
    client_factory: Callable[[Account], nmpi.Client],
) -> None:
    owner, job_id = public_job
    stranger = client_factory(new_user())  # signed in, no role in the collab
    job = stranger.get_job(job_id)  # with its log and comments
    assert job["collab"] == owner.collab
    assert job["log"] == "done\n"
    assert [c["content"] for c in job["comments"]] == ["Published with the paper."]
    assert job["tags"] == ["open"]
    assert stranger.job_status(job_id) == "finished"
    assert f"/jobs/{job_id}" in stranger.completed_jobs(owner.collab)
    # Its resource requests were already public: the collab's automatic test quota.
    assert [q["platform"] for q in stranger.quotas(owner.collab)] == ["SpiNNaker"]


def test_every_read_route_agrees(
    public_job: tuple[Account, int], new_user: Callable[..., Account], api: Api
) -> None:
    owner, job_id = public_job
    http = api(new_user().token)
    listed = http.get("/jobs/", params={"collab": owner.collab})
    assert listed.status_code == 200
    assert [j["id"] for j in listed.json()] == [job_id]
    assert http.get(f"/jobs/{job_id}", params={"with_log": "true"}).json()["log"] == "done\n"
    assert http.get(f"/jobs/{job_id}/log").text == "done\n"
    comments = http.get(f"/jobs/{job_id}/comments/").json()
    assert [c["content"] for c in comments] == ["Published with the paper."]
    assert http.get(f"/jobs/{job_id}/tags/").json() == ["open"]
    assert http.get("/tags/", params={"collab": owner.collab}).json() == ["open"]
    files = http.get(f"/jobs/{job_id}/output_data").json()["files"]
    assert [f["url"] for f in files] == [f"https://spinnaker.example.org/{job_id}/spikes.dat"]
    assert http.get("/projects/", params={"collab": owner.collab}).status_code == 200


def test_public_is_read_only(
    public_job: tuple[Account, int],
    new_user: Callable[..., Account],
    api: Api,
    client_factory: Callable[[Account], nmpi.Client],
) -> None:
    owner, job_id = public_job
    account = new_user()
    stranger = client_factory(account)
    with pytest.raises(Exception, match="Error 404"):  # submitting needs editor
        stranger.submit_job(source=SCRIPT, platform="SpiNNaker", collab_id=owner.collab)
    with pytest.raises(Exception, match="Error 403"):
        stranger.add_tags(job_id, ["mine"])
    with pytest.raises(Exception, match="Error 403"):
        stranger.remove_tags(job_id, ["open"])
    with pytest.raises(Exception, match=r"Error 403.*members"):
        stranger.submit_comment(job_id, "Nice!")
    http = api(account.token)
    assert http.delete(f"/jobs/{job_id}").status_code == 403
    owner_view = api(owner.token).get(f"/jobs/{job_id}", params={"with_comments": "true"}).json()
    assert owner_view["status"] == "finished"
    assert owner_view["tags"] == ["open"]
    assert len(owner_view["comments"]) == 1
    # A viewer (a role, read only) may still comment, as before.
    viewer = client_factory(new_user(roles={owner.collab: "viewer"}))
    assert viewer.submit_comment(job_id, "Seen.")["content"] == "Seen."


def test_private_and_removed_jobs_stay_hidden(
    public_job: tuple[Account, int],
    new_user: Callable[..., Account],
    api: Api,
    client_factory: Callable[[Account], nmpi.Client],
) -> None:
    owner, job_id = public_job
    private = new_user()
    private_uri = client_factory(private).submit_job(
        source=SCRIPT, platform="SpiNNaker", collab_id=private.collab
    )
    stranger_account = new_user()
    stranger = client_factory(stranger_account)
    with pytest.raises(Exception, match="No such job"):
        stranger.get_job(private_uri)
    with pytest.raises(Exception, match="Error 403"):
        stranger.completed_jobs(private.collab)
    http = api(stranger_account.token)
    reply = http.get("/jobs/", params=[("collab", owner.collab), ("collab", private.collab)])
    assert reply.status_code == 403
    assert reply.json()["detail"].endswith(f": {private.collab}")  # the public one is fine
    assert http.get("/tags/", params={"collab": private.collab}).status_code == 403
    # A job its owner removed is gone for everyone but administrators.
    assert api(owner.token).delete(f"/jobs/{job_id}").status_code == 204
    with pytest.raises(Exception, match="No such job"):
        stranger.get_job(job_id)
    assert http.get(f"/jobs/{job_id}/log").status_code == 404
    assert http.get("/jobs/", params={"collab": owner.collab}).json() == []


def test_public_collab_sessions(
    database_url: str,
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
    api: Api,
) -> None:
    owner = new_user()
    make_public(database_url, owner.collab)
    provider = api(api_key=new_provider(["BrainScaleS-2"]))
    body = {"collab": owner.collab, "user_id": owner.username, "hardware_platform": "BrainScaleS-2"}
    started = provider.post("/sessions/", json=body).json()
    http = api(new_user().token)
    listed = http.get("/sessions/", params={"collab": owner.collab}).json()
    assert [s["id"] for s in listed] == [started["id"]]
    assert http.get(f"/sessions/{started['id']}").status_code == 200
