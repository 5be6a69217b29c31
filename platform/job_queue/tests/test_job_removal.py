"""Removing jobs: who may, what is kept, what the owner sees, and the site's last PUT.

Users drive the unmodified nmpi client (0.11.2, which has no removal call: DELETE goes over
HTTP as the reference's web UI does); the hardware site speaks the provider protocol.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
from conftest import Account

ADMIN_COLLAB = "neuromorphic-platform-admin"
SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"

Api = Callable[..., httpx.Client]
NewUser = Callable[..., Account]


def claim(site: httpx.Client, platform: str, job_id: int) -> dict[str, Any]:
    """Claim jobs of `platform` until `job_id` comes (older jobs of other tests come first)."""
    for _ in range(1000):
        reply = site.get(f"/jobs/next/{platform}")
        assert reply.status_code == 200, reply.text
        if reply.json()["id"] == job_id:
            return dict(reply.json())
    raise AssertionError(f"job {job_id} was never handed out")


def test_site_accounting_on_a_job_removed_while_running(
    client_factory: Callable[[Account], nmpi.Client],
    api: Api,
    new_user: NewUser,
    new_provider: Callable[[list[str]], str],
) -> None:
    alice = new_user()
    client = client_factory(alice)
    uri = client.submit_job(source=SCRIPT, platform="SpiNNaker", collab_id=alice.collab)
    job_id = int(uri.rsplit("/", 1)[-1])
    site = api(api_key=new_provider(["SpiNNaker"]))
    claim(site, "SpiNNaker", job_id)
    assert site.put(f"/jobs/{job_id}", json={"status": "running"}).status_code == 200

    # The user gives up on the job while the site runs it.
    assert api(alice.token).delete(f"/jobs/{job_id}").status_code == 204
    assert uri not in client.queued_jobs()

    # The site's final report: the status change is ignored (said in a header), the rest kept.
    final = {
        "status": "finished",
        "output_data": {
            "repository": "SpiNNaker Manchester storage",
            "files": [{"url": "https://spinnaker.example.org/out/spikes.dat", "path": "s.dat"}],
        },
        "provenance": {"spynnaker_version": "7.0.0"},
        "resource_usage": {"value": 0.3, "units": "core-hours"},
        "log": "ran until the end\n",
    }
    reply = site.put(f"/jobs/{job_id}", json=final)
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "removed"
    assert reply.headers["X-NMPI-Status-Ignored"].startswith("finished: the job was removed")
    assert reply.json()["resource_usage"] == {"value": 0.3, "units": "core-hours"}
    assert reply.json()["log"] == "ran until the end\n"
    # Repeating it changes nothing more (usage is a total, charged once).
    assert site.put(f"/jobs/{job_id}", json=final).status_code == 200

    # The collab's quota was charged; the owner is told the job was removed, not "No such job".
    assert [q["usage"] for q in client.quotas(alice.collab)] == [pytest.approx(0.3)]
    with pytest.raises(Exception, match=f"Error 410: job {job_id} was removed by its owner"):
        client.get_job(job_id)

    admin = api(new_user(roles={ADMIN_COLLAB: "editor"}).token)
    seen = admin.get(f"/jobs/{job_id}", params={"with_log": "true"}).json()
    assert seen["status"] == "removed"
    assert seen["removed_by"] == alice.username
    assert seen["timestamp_completion"]
    assert [f["url"] for f in seen["output_data"]["files"]] == [
        "https://spinnaker.example.org/out/spikes.dat"
    ]
    assert seen["log"] == "ran until the end\n"


def test_editors_may_not_remove_a_colleagues_job(
    client_factory: Callable[[Account], nmpi.Client], api: Api, new_user: NewUser
) -> None:
    alice = new_user()
    uri = client_factory(alice).submit_job(source=SCRIPT, platform="Demo", collab_id=alice.collab)
    job_id = int(uri.rsplit("/", 1)[-1])
    editor = new_user(roles={alice.collab: "editor"})
    viewer = new_user(roles={alice.collab: "viewer"})
    for colleague in (editor, viewer):
        refused = api(colleague.token).delete(f"/jobs/{job_id}")
        assert refused.status_code == 403
        assert f"only the job's owner ({alice.username})" in refused.json()["detail"]
    assert api(new_user().token).delete(f"/jobs/{job_id}").status_code == 404  # not its collab
    assert client_factory(alice).job_status(job_id) == "submitted"
    assert uri in client_factory(alice).queued_jobs()


@pytest.mark.parametrize("remover", ["collab administrator", "platform administrator"])
def test_owner_sees_who_removed_the_job_and_why(
    client_factory: Callable[[Account], nmpi.Client],
    api: Api,
    new_user: NewUser,
    server_log: Path,
    remover: str,
) -> None:
    alice = new_user()
    client = client_factory(alice)
    uri = client.submit_job(source=SCRIPT, platform="Demo", collab_id=alice.collab)
    job_id = int(uri.rsplit("/", 1)[-1])
    roles = {alice.collab: "administrator"} if remover == "collab administrator" else {}
    boss = new_user(roles=roles or {ADMIN_COLLAB: "editor"})
    reply = api(boss.token).delete(f"/jobs/{job_id}", params={"reason": "blocks the board"})
    assert reply.status_code == 204

    assert uri not in client.queued_jobs()
    with pytest.raises(Exception, match="Error 410") as gone:
        client.get_job(job_id)
    assert f"removed by {boss.username}, an administrator, on " in str(gone.value)
    assert str(gone.value).endswith(": blocks the board")
    # Comments, tags and logs say the same instead of "not found".
    assert api(alice.token).get(f"/jobs/{job_id}/log").status_code == 410

    # The record: visible to platform administrators, and in the JSON log.
    admin = api(new_user(roles={ADMIN_COLLAB: "editor"}).token)
    seen = admin.get(f"/jobs/{job_id}").json()
    assert (seen["status"], seen["removed_by"]) == ("removed", boss.username)
    assert seen["removal_reason"] == "blocks the board"
    assert seen["removed_at"]
    lines = [json.loads(x) for x in server_log.read_text().splitlines() if x.startswith("{")]
    [entry] = [e for e in lines if e.get("message") == "job removed" and e["job_id"] == job_id]
    assert (entry["by"], entry["owner"]) == (boss.username, alice.username)

    # Removing it again keeps the first record.
    assert admin.delete(f"/jobs/{job_id}").status_code == 204
    assert admin.get(f"/jobs/{job_id}").json()["removed_by"] == boss.username


def test_owner_removes_and_admin_deletes_for_good(
    client_factory: Callable[[Account], nmpi.Client], api: Api, new_user: NewUser
) -> None:
    alice = new_user()
    client = client_factory(alice)
    uri = client.submit_job(source=SCRIPT, platform="Demo", collab_id=alice.collab)
    job_id = int(uri.rsplit("/", 1)[-1])
    owner = api(alice.token)
    assert owner.delete(f"/jobs/{job_id}").status_code == 204
    again = owner.delete(f"/jobs/{job_id}")
    assert again.status_code == 410
    assert again.json()["detail"].startswith(f"job {job_id} was removed by its owner")
    admin = api(new_user(roles={ADMIN_COLLAB: "editor"}).token)
    assert admin.delete(f"/jobs/{job_id}", params={"as_admin": "true"}).status_code == 204
    assert admin.get(f"/jobs/{job_id}").status_code == 404
    with pytest.raises(Exception, match="No such job"):
        client.get_job(job_id)
