"""Resource requests (projects) and quotas over HTTP: permissions, derived status, admin calls."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Account

ADMIN_COLLAB = "neuromorphic-platform-admin"
Api = Callable[..., httpx.Client]
NewUser = Callable[..., Account]


def create(
    client: httpx.Client, collab: str, status: str = "in preparation", **extra: Any
) -> dict[str, Any]:
    body = {"collab": collab, "title": "Spiking cortex", "abstract": "We model V1.", **extra}
    reply = client.post("/projects/", json={**body, "status": status})
    assert reply.status_code == 201, reply.text
    result: dict[str, Any] = reply.json()
    return result


def decide(admin: httpx.Client, project_id: str, decision: str) -> dict[str, Any]:
    reply = admin.put(
        f"/projects/{project_id}", params={"as_admin": "true"}, json={"status": decision}
    )
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


@pytest.fixture
def admin(api: Api, new_user: NewUser) -> httpx.Client:
    return api(new_user(roles={ADMIN_COLLAB: "editor"}).token)


def test_create_and_read_back(api: Api, new_user: NewUser) -> None:
    alice = new_user()
    client = api(alice.token)
    project = create(client, alice.collab, description="Details.")
    assert project["context"] == project["id"]
    assert project["resource_uri"] == f"/projects/{project['id']}"
    assert project["status"] == "in preparation"
    assert project["owner"] == alice.username
    assert project["submission_date"] is None
    assert project["quotas"] == []
    again = client.get(project["resource_uri"])
    assert again.status_code == 200
    assert again.json() == project
    submitted = create(client, alice.collab, status="under review")
    assert submitted["status"] == "under review"
    assert submitted["context"] == submitted["id"]
    assert submitted["submission_date"] == date.today().isoformat()
    assert submitted["decision_date"] is None


def test_create_needs_editor_and_no_decision(api: Api, new_user: NewUser) -> None:
    alice = new_user()
    viewer = new_user(roles={alice.collab: "viewer"})
    reply = api(viewer.token).post(
        "/projects/", json={"collab": alice.collab, "title": "t", "abstract": "a"}
    )
    assert reply.status_code == 404
    assert "editor" in reply.json()["detail"]
    for decision in ("accepted", "rejected"):
        reply = api(alice.token).post(
            "/projects/",
            json={"collab": alice.collab, "title": "t", "abstract": "a", "status": decision},
        )
        assert reply.status_code == 403
        assert "administrators" in reply.json()["detail"]
    assert api().get("/projects/").status_code == 401


def test_visibility(api: Api, new_user: NewUser) -> None:
    alice = new_user()
    project = create(api(alice.token), alice.collab)
    viewer = new_user(roles={alice.collab: "viewer"})
    stranger = new_user()
    assert api(viewer.token).get(project["resource_uri"]).status_code == 200
    reply = api(stranger.token).get(project["resource_uri"])
    assert reply.status_code == 404
    assert project["id"] in reply.json()["detail"]
    assert api(alice.token).get(f"/projects/{uuid.uuid4()}").status_code == 404
    assert api(alice.token).get("/projects/not-a-uuid").status_code == 422


def test_edit_then_submit_then_locked(api: Api, new_user: NewUser) -> None:
    alice = new_user()
    owner = api(alice.token)
    project = create(owner, alice.collab)
    uri = project["resource_uri"]
    # What the 0.11.2 client's edit_resource_request sends.
    reply = owner.put(uri, json={"status": "in preparation", "title": "Better title"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["title"] == "Better title"
    assert reply.json()["status"] == "in preparation"
    # Another editor of the collab may edit; a viewer may not; a stranger does not see it.
    colleague = new_user(roles={alice.collab: "editor"})
    reply = api(colleague.token).put(uri, json={"abstract": "New abstract"})
    assert reply.status_code == 200
    assert reply.json()["abstract"] == "New abstract"
    viewer = new_user(roles={alice.collab: "viewer"})
    reply = api(viewer.token).put(uri, json={"title": "Mine now"})
    assert reply.status_code == 403
    assert "owner or an editor" in reply.json()["detail"]
    assert api(new_user().token).put(uri, json={"title": "x"}).status_code == 404
    # Submitting is allowed, and fixes the submission date ...
    reply = owner.put(uri, json={"status": "under review", "description": "Final."})
    assert reply.status_code == 200
    assert reply.json()["status"] == "under review"
    assert reply.json()["submission_date"] == date.today().isoformat()
    # ... after which the request is locked.
    reply = owner.put(uri, json={"status": "in preparation", "title": "Oops"})
    assert reply.status_code == 403
    assert "can no longer be edited" in reply.json()["detail"]
    assert owner.get(uri).json()["title"] == "Better title"


def test_only_admins_decide(api: Api, new_user: NewUser, admin: httpx.Client) -> None:
    alice = new_user()
    owner = api(alice.token)
    project = create(owner, alice.collab)
    uri = project["resource_uri"]
    reply = owner.put(uri, json={"status": "accepted"})
    assert reply.status_code == 403
    assert "administrators" in reply.json()["detail"]
    reply = owner.put(uri, params={"as_admin": "true"}, json={"status": "accepted"})
    assert reply.status_code == 403
    assert "only platform administrators" in reply.json()["detail"]
    owner.put(uri, json={"status": "under review"})
    # An admin acting as a user is bound by the same lock.
    assert admin.put(uri, json={"title": "x"}).status_code == 403
    accepted = decide(admin, project["id"], "accepted")
    assert accepted["status"] == "accepted"
    assert accepted["decision_date"] == date.today().isoformat()
    assert owner.get(uri).json()["status"] == "accepted"
    other = create(owner, alice.collab, status="under review")
    rejected = decide(admin, other["id"], "rejected")
    assert rejected["status"] == "rejected"
    assert rejected["decision_date"] == date.today().isoformat()
    # A decision made on a request still in preparation also records its submission.
    draft = create(owner, alice.collab)
    decided = decide(admin, draft["id"], "accepted")
    assert decided["submission_date"] == date.today().isoformat()
    assert decided["status"] == "accepted"


def test_listing_filters_and_paging(api: Api, new_user: NewUser, admin: httpx.Client) -> None:
    alice = new_user()
    owner = api(alice.token)
    prep = create(owner, alice.collab)
    review = create(owner, alice.collab, status="under review")
    accepted = decide(admin, create(owner, alice.collab, status="under review")["id"], "accepted")
    rejected = decide(admin, create(owner, alice.collab, status="under review")["id"], "rejected")
    bob = new_user(roles={alice.collab: "editor"})
    bobs = create(api(bob.token), alice.collab)
    everything = {p["id"] for p in (prep, review, accepted, rejected, bobs)}

    def ids(client: httpx.Client, params: Any) -> set[str]:
        reply = client.get("/projects/", params=params)
        assert reply.status_code == 200, reply.text
        return {p["id"] for p in reply.json()}

    assert ids(owner, {"collab": alice.collab}) == everything
    assert ids(owner, {"collab": alice.collab, "status": "in preparation"}) == {
        prep["id"],
        bobs["id"],
    }
    assert ids(owner, {"collab": alice.collab, "status": "under review"}) == {review["id"]}
    assert ids(owner, {"collab": alice.collab, "status": "accepted"}) == {accepted["id"]}
    assert ids(owner, {"collab": alice.collab, "status": "rejected"}) == {rejected["id"]}
    both = [("collab", alice.collab), ("status", "accepted"), ("status", "rejected")]
    assert ids(owner, both) == {accepted["id"], rejected["id"]}
    assert ids(owner, {"collab": alice.collab, "owner": bob.username}) == {bobs["id"]}
    assert owner.get("/projects/", params={"status": "bogus"}).status_code == 422
    # Paging: newest first, stable, no overlap.
    page1 = owner.get("/projects/", params={"collab": alice.collab, "size": 3}).json()
    page2 = owner.get(
        "/projects/", params={"collab": alice.collab, "size": 3, "from_index": 3}
    ).json()
    assert len(page1) == 3
    assert len(page2) == 2
    assert {p["id"] for p in page1 + page2} == everything
    assert page1[0]["status"] == "in preparation"  # no submission date yet: the newest
    # Accepted projects carry their quotas (what client.quotas() reads).
    admin.post(
        f"/projects/{accepted['id']}/quotas/",
        params={"as_admin": "true"},
        json={"platform": "SpiNNaker", "units": "core-hours", "limit": 5},
    )
    listed = owner.get("/projects/", params={"collab": alice.collab, "status": "accepted"}).json()
    assert [q["limit"] for q in listed[0]["quotas"]] == [5]
    # Without a collab: what the caller may view; a stranger sees none of these.
    viewer = new_user(roles={alice.collab: "viewer"})
    assert everything <= ids(api(viewer.token), {"size": 1000})
    stranger = api(new_user().token)
    assert not everything & ids(stranger, {"size": 100000})
    reply = stranger.get("/projects/", params={"collab": alice.collab})
    assert reply.status_code == 403
    assert alice.collab in reply.json()["detail"]
    # Admins see everything.
    assert ids(admin, {"owner": alice.username, "size": 100}) == everything - {bobs["id"]}
    assert owner.get("/projects/", params={"size": 100001}).status_code == 422


def test_delete(api: Api, new_user: NewUser, admin: httpx.Client) -> None:
    alice = new_user()
    owner = api(alice.token)
    draft = create(owner, alice.collab)
    viewer = new_user(roles={alice.collab: "viewer"})
    assert api(viewer.token).delete(draft["resource_uri"]).status_code == 403
    assert api(new_user().token).delete(draft["resource_uri"]).status_code == 404
    assert owner.delete(draft["resource_uri"]).status_code == 204
    assert owner.get(draft["resource_uri"]).status_code == 404
    submitted = create(owner, alice.collab, status="under review")
    reply = owner.delete(submitted["resource_uri"])
    assert reply.status_code == 403
    assert "only requests in preparation" in reply.json()["detail"]
    accepted = decide(admin, submitted["id"], "accepted")
    quota = admin.post(
        f"/projects/{accepted['id']}/quotas/",
        params={"as_admin": "true"},
        json={"platform": "Test", "units": "hours", "limit": 1},
    ).json()
    reply = admin.delete(accepted["resource_uri"], params={"as_admin": "true"})
    assert reply.status_code == 204
    assert owner.get(accepted["resource_uri"]).status_code == 404
    assert admin.get(quota["resource_uri"]).status_code == 404


def test_quotas(
    api: Api,
    new_user: NewUser,
    admin: httpx.Client,
    new_provider: Callable[[list[str]], str],
) -> None:
    alice = new_user()
    owner = api(alice.token)
    project = decide(admin, create(owner, alice.collab, status="under review")["id"], "accepted")
    quotas_uri = f"/projects/{project['id']}/quotas/"
    body = {"platform": "BrainScaleS", "units": "wafer-hours", "limit": 2.5}
    reply = owner.post(quotas_uri, params={"as_admin": "true"}, json=body)
    assert reply.status_code == 403
    assert admin.post(quotas_uri, json=body).status_code == 403  # as_admin=true is needed
    reply = admin.post(quotas_uri, params={"as_admin": "true"}, json={**body, "units": "hours"})
    assert reply.status_code == 400
    assert "wafer-hours" in reply.json()["detail"]
    reply = admin.post(
        quotas_uri,
        params={"as_admin": "true"},
        json={**body, "platform": "Loihi", "units": "hours"},
    )
    assert reply.status_code == 400
    assert "unknown platform 'Loihi'" in reply.json()["detail"]
    reply = admin.post(quotas_uri, params={"as_admin": "true"}, json=body)
    assert reply.status_code == 201, reply.text
    quota = reply.json()
    assert quota["usage"] == 0
    assert quota["project"] == project["resource_uri"]
    assert quota["resource_uri"] == f"{quotas_uri}{quota['id']}"
    assert owner.get(quotas_uri).json() == [quota]
    assert owner.get(quota["resource_uri"]).json() == quota
    assert owner.get(project["resource_uri"]).json()["quotas"] == [quota]
    other = create(owner, alice.collab)
    assert owner.get(f"/projects/{other['id']}/quotas/{quota['id']}").status_code == 404
    assert api(new_user().token).get(quotas_uri).status_code == 404
    # Updating: admins (as_admin) and the provider serving the platform; nobody else.
    reply = owner.put(quota["resource_uri"], params={"as_admin": "true"}, json={"usage": 0})
    assert reply.status_code == 403
    reply = admin.put(
        quota["resource_uri"], params={"as_admin": "true"}, json={"usage": 1, "limit": 4}
    )
    assert reply.status_code == 200
    assert (reply.json()["usage"], reply.json()["limit"]) == (1, 4)
    provider = api(api_key=new_provider(["BrainScaleS", "BrainScaleS-2"]))
    reply = provider.put(quota["resource_uri"], json={"usage": 1.5})
    assert reply.status_code == 200, reply.text
    assert (reply.json()["usage"], reply.json()["limit"]) == (1.5, 4)
    assert provider.get(quotas_uri).json()[0]["usage"] == 1.5
    stranger = api(api_key=new_provider(["SpiNNaker"]))
    reply = stranger.put(quota["resource_uri"], json={"usage": 0})
    assert reply.status_code == 403
    assert "BrainScaleS" in reply.json()["detail"]
    assert stranger.get(quotas_uri).json() == []
    assert provider.put(quota["resource_uri"], json={"usage": -1}).status_code == 422


def test_unmodified_client(
    server: str,
    new_user: NewUser,
    admin: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The nmpi 0.11.2 client's resource-request calls, against this server."""
    nmpi = pytest.importorskip("nmpi")
    from nmpi import nmpi_user

    monkeypatch.setattr(nmpi_user, "TOKENFILE", str(tmp_path / "hbptoken"))
    alice = new_user()
    client = nmpi.Client(
        job_service=server, user_info_endpoint=f"{server}/userinfo", token=alice.token
    )
    draft_uri = client.create_resource_request("Draft", alice.collab, "Abstract")
    assert client.get_resource_request(draft_uri)["status"] == "in preparation"
    client.edit_resource_request(draft_uri, title="Draft 2", submit=True)
    got = client.get_resource_request(draft_uri.rsplit("/", 1)[-1])
    assert (got["title"], got["status"]) == ("Draft 2", "under review")
    submitted_uri = client.create_resource_request("Now", alice.collab, "A", submit=True)
    assert {r["resource_uri"] for r in client.resource_requests(alice.collab)} == {
        draft_uri,
        submitted_uri,
    }
    decide(admin, submitted_uri.rsplit("/", 1)[-1], "accepted")
    admin.post(
        f"{submitted_uri}/quotas/",
        params={"as_admin": "true"},
        json={"platform": "SpiNNaker", "units": "core-hours", "limit": 10},
    )
    quotas = client.quotas(alice.collab)
    assert [(q["platform"], q["limit"], q["usage"]) for q in quotas] == [("SpiNNaker", 10, 0)]
    with pytest.raises(Exception, match="Error 403"):
        client.edit_resource_request(submitted_uri, title="Changed")
