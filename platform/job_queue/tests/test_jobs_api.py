"""Jobs over HTTP: submission, visibility, listing filters, provider updates and states."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from conftest import Account

CODE = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"


def submit(
    client: httpx.Client, collab: str, platform: str = "SpiNNaker", **extra: object
) -> dict[str, Any]:
    reply = client.post(
        "/jobs/",
        json={
            "code": CODE,
            "command": "run.py",
            "collab": collab,
            "hardware_platform": platform,
            **extra,
        },
    )
    assert reply.status_code == 201, reply.text
    job: dict[str, Any] = reply.json()
    return job


def test_submit_and_read_back(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    client = api(alice.token)
    job = submit(client, alice.collab, tags=["demo", "first"], hardware_config={"cores": 4})
    assert job["status"] == "submitted"
    assert job["user_id"] == alice.username
    assert job["resource_uri"] == f"/jobs/{job['id']}"
    assert job["tags"] == ["demo", "first"]
    again = client.get(f"/jobs/{job['id']}", params={"with_log": "true", "with_comments": "true"})
    assert again.status_code == 200
    body = again.json()
    assert body["code"] == CODE
    assert body["hardware_config"] == {"cores": 4}
    assert body["log"] == ""
    assert body["comments"] == []


def test_submission_needs_editor_role(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    owner = new_user()
    viewer = new_user(roles={owner.collab: "viewer"})
    reply = api(viewer.token).post(
        "/jobs/", json={"code": CODE, "collab": owner.collab, "hardware_platform": "SpiNNaker"}
    )
    assert reply.status_code == 404
    assert "editor" in reply.json()["detail"]
    # ... but a viewer sees the collab's jobs.
    job = submit(api(owner.token), owner.collab)
    assert api(viewer.token).get(f"/jobs/{job['id']}").status_code == 200
    stranger = new_user()
    assert api(stranger.token).get(f"/jobs/{job['id']}").status_code == 404


def test_unknown_platform_and_bad_token(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    reply = api(alice.token).post(
        "/jobs/", json={"code": CODE, "collab": alice.collab, "hardware_platform": "Loihi"}
    )
    assert reply.status_code == 400
    assert "Loihi" in reply.json()["detail"]
    assert api("not-a-token").get("/jobs/").status_code == 401
    assert api().get("/jobs/").status_code == 401


def test_listing_filters_and_paging(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    client = api(alice.token)
    ids = [submit(client, alice.collab, tags=[f"t{i % 2}x"])["id"] for i in range(5)]
    listed = client.get("/jobs/", params={"collab": alice.collab, "size": 3}).json()
    assert [j["id"] for j in listed] == ids[::-1][:3]  # newest first
    page2 = client.get("/jobs/", params={"collab": alice.collab, "size": 3, "from_index": 3}).json()
    assert [j["id"] for j in page2] == ids[::-1][3:]
    tagged = client.get("/jobs/", params={"collab": alice.collab, "tags": "t0x"}).json()
    assert sorted(j["id"] for j in tagged) == [ids[0], ids[2], ids[4]]
    mine = client.get("/jobs/", params=[("status", "submitted"), ("status", "running")]).json()
    assert {j["id"] for j in mine} == set(ids)
    other = new_user()
    assert api(other.token).get("/jobs/", params={"collab": alice.collab}).status_code == 403


def test_provider_flow_states_and_idempotence(
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
) -> None:
    alice = new_user()
    user = api(alice.token)
    job = submit(user, alice.collab, platform="BrainScaleS")
    provider = api(api_key=new_provider(["BrainScaleS"]))
    claimed = provider.get("/jobs/next/BrainScaleS")
    while claimed.status_code == 200 and claimed.json()["id"] != job["id"]:
        claimed = provider.get("/jobs/next/BrainScaleS")  # older jobs of earlier tests
    assert claimed.status_code == 200
    assert claimed.json()["status"] == "submitted"  # leased, still queued for the user
    assert claimed.json()["claim"]["id"] == claimed.headers["X-NMPI-Claim"]
    assert provider.put(f"/jobs/{job['id']}", json={"status": "validated"}).status_code == 200
    assert provider.put(f"/jobs/{job['id']}", json={"status": "running"}).status_code == 200
    assert provider.patch(f"/jobs/{job['id']}/log", content="line 1\n").text == "line 1\n"
    assert provider.patch(f"/jobs/{job['id']}/log", content="line 2\n").text == "line 1\nline 2\n"
    result = {
        "status": "finished",
        "output_data": {
            "repository": "Fake repository used for testing",
            "files": [
                {"url": "https://example.org/out/spikes.h5", "path": "spikes.h5", "size": 10}
            ],
        },
        "resource_usage": {"value": 0.25, "units": "wafer-hours"},
        "provenance": {"platform": "emulated"},
    }
    for _ in range(3):  # repeating the PUT changes nothing more
        reply = provider.put(f"/jobs/{job['id']}", json=result)
        assert reply.status_code == 200, reply.text
    final = user.get(f"/jobs/{job['id']}", params={"with_log": "true"}).json()
    assert final["status"] == "finished"
    assert final["timestamp_completion"]
    assert len(final["output_data"]["files"]) == 1
    assert final["resource_usage"] == {"value": 0.25, "units": "wafer-hours"}
    assert final["log"] == "line 1\nline 2\n"
    back = provider.put(f"/jobs/{job['id']}", json={"status": "running"})
    assert back.status_code == 409
    assert "finished job cannot become running" in back.json()["detail"]
    wrong_units = provider.put(
        f"/jobs/{job['id']}", json={"resource_usage": {"value": 1, "units": "core-hours"}}
    )
    assert wrong_units.status_code == 400
    assert "wafer-hours" in wrong_units.json()["detail"]


def test_provider_bound_to_its_queues(
    api: Callable[..., httpx.Client], new_provider: Callable[[list[str]], str]
) -> None:
    provider = api(api_key=new_provider(["SpiNNaker"]))
    assert provider.get("/jobs/next/BrainScaleS").status_code == 403
    assert api(api_key="wrong").get("/jobs/next/SpiNNaker").status_code == 401


def test_remove_hides_the_job(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    client = api(alice.token)
    job = submit(client, alice.collab)
    assert client.delete(f"/jobs/{job['id']}").status_code == 204
    gone = client.get(f"/jobs/{job['id']}")
    assert gone.status_code == 410
    assert gone.json()["detail"].startswith(f"job {job['id']} was removed by its owner")
    assert job["id"] not in [
        j["id"] for j in client.get("/jobs/", params={"collab": alice.collab}).json()
    ]
