"""Data items must not take the unmodified client's download_data() outside its folder.

download_data() saves each output item at os.path.join(local_dir, item["path"]) and fetches
item["url"] with urlretrieve: the rule (domain/data_items.unsafe_path_reason) is checked as a
property against both path flavours, then over HTTP and with the client itself.
"""

from __future__ import annotations

import functools
import http.server
import ntpath
import posixpath
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import nmpi
import nmpi.nmpi_user
import pytest
from conftest import Account
from hypothesis import strategies as st
from nmpi_job_queue.domain.data_items import unsafe_path_reason

SCRIPT = "import pyNN.spiNNaker as sim\nsim.setup()\nsim.run(10.0)\nsim.end()\n"
PLATFORM = "Spikey"  # a queue no other test module feeds

UNSAFE = {
    "": "empty",
    "/etc/cron.d/job": "relative",
    "//server/share/x": "relative",
    "../escaped.txt": "'..'",
    "results/../../escaped.txt": "'..'",
    "results/..": "'..'",
    "./x": "'.'",
    "... /x": "dots and spaces",
    "..\\escaped.txt": "backslashes",
    "results\\x.dat": "backslashes",
    "C:escaped.txt": "colons",
    "C:/Windows/x": "colons",
    "data.h5:stream": "colons",
    "~/.bashrc": "'~'",
    "~root/x": "'~'",
    "~backup": "'~'",  # the home of user "backup"
    "results//x": "empty segments",
    "results/": "empty segments",
    "x\x00.dat": "control",
    "x\n.dat": "control",
    "results/NUL.txt": "device",
    "con": "device",
    "COM1.dat": "device",
    "a" * 256: "255 bytes",
}
SAFE = [
    "spikes.dat",
    "results/run 1/spikes.h5",
    ".hidden/x",
    "..data",
    "x..",
    "results/~backup",  # only a leading '~' is refused
    "a~/b",
    "conference.txt",
    "é" * 127,
]


@pytest.mark.parametrize(("path", "rule"), UNSAFE.items())
def test_unsafe_paths_are_named(path: str, rule: str) -> None:
    reason = unsafe_path_reason(path)
    assert reason is not None
    assert rule in reason


@pytest.mark.parametrize("path", SAFE)
def test_safe_paths_pass(path: str) -> None:
    assert unsafe_path_reason(path) is None


def _inside(flavour: Any, base: str, path: str) -> bool:
    local = flavour.normpath(flavour.join(base, path))
    return bool(local != base and flavour.commonpath([base, local]) == base)


@hypothesis.settings(max_examples=3000, derandomize=True, database=None, deadline=None)
@hypothesis.given(st.text(alphabet="/\\.:~ Ca\x00", max_size=12))
def test_accepted_paths_stay_inside_the_folder(path: str) -> None:
    """Whatever the rule lets through lands strictly inside the folder, on POSIX and Windows."""
    if unsafe_path_reason(path) is None:
        assert _inside(posixpath, "/home/u/download", path), path
        assert _inside(ntpath, "C:\\Users\\u\\download", path), path
        assert ntpath.splitdrive(ntpath.join("C:\\dl", path))[0] == "C:"


# --- over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def output_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A hardware site's file server for job outputs (loopback only)."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _claim(provider: httpx.Client, job_id: int) -> None:
    claimed = provider.get(f"/jobs/next/{PLATFORM}")
    while claimed.status_code == 200 and claimed.json()["id"] != job_id:
        claimed = provider.get(f"/jobs/next/{PLATFORM}")  # older jobs of earlier runs
    assert claimed.status_code == 200, claimed.text


def _files(site: str, *paths: str) -> list[dict[str, Any]]:
    return [{"url": f"{site}/f{i}", "path": p} for i, p in enumerate(paths)]


def test_provider_cannot_publish_unsafe_outputs(
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
) -> None:
    alice = new_user()
    user = api(alice.token)
    job = user.post(
        "/jobs/", json={"code": SCRIPT, "collab": alice.collab, "hardware_platform": PLATFORM}
    ).json()
    provider = api(api_key=new_provider([PLATFORM]))
    _claim(provider, job["id"])
    site = "https://site.example.org/out"
    update = {
        "status": "finished",
        "output_data": {
            "repository": "site storage",
            "files": _files(site, "ok.dat", "../../.bashrc", "/etc/passwd"),
        },
    }
    refused = provider.put(f"/jobs/{job['id']}", json=update)
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "output_data.files[1].path '../../.bashrc': '.' and '..' segments" in detail
    assert "output_data.files[2].path '/etc/passwd': must be relative" in detail
    assert "files[0]" not in detail
    # Nothing of the refused update was kept, not even its status.
    stored = user.get(f"/jobs/{job['id']}").json()
    assert stored["status"] == "submitted"  # claimed (a lease), never confirmed
    assert stored["output_data"]["files"] == []

    publish = {"repository": "site storage", "files": _files(site, "C:\\x", "a\\..\\..\\x")}
    refused = provider.put(f"/jobs/{job['id']}/output_data", json=publish)
    assert refused.status_code == 400
    assert "files[0].path 'C:\\\\x': " in refused.json()["detail"]
    assert "files[1].path" in refused.json()["detail"]

    local = {"repository": "x", "files": [{"url": "file:///home/alice/.ssh/id_rsa", "path": "k"}]}
    refused = provider.put(f"/jobs/{job['id']}/output_data", json=local)
    assert refused.status_code == 400
    assert "files[0].url file: URLs are not allowed" in refused.json()["detail"]


def test_submission_with_unsafe_inputs_is_refused(
    api: Callable[..., httpx.Client], new_user: Callable[..., Account]
) -> None:
    alice = new_user()
    user = api(alice.token)
    for item, named in [
        ({"url": "https://data.example.org/a", "path": "../../a"}, "input_data[1].path"),
        ({"url": "file:///etc/shadow", "path": "shadow"}, "input_data[1].url"),
    ]:
        reply = user.post(
            "/jobs/",
            json={
                "code": SCRIPT,
                "collab": alice.collab,
                "hardware_platform": PLATFORM,
                "input_data": [{"url": "https://data.example.org/ok", "path": "ok"}, item],
            },
        )
        assert reply.status_code == 400, reply.text
        assert named in reply.json()["detail"]
    assert user.get("/jobs/", params={"collab": alice.collab}).json() == []


def test_client_downloads_stay_in_their_folder(
    api: Callable[..., httpx.Client],
    new_user: Callable[..., Account],
    new_provider: Callable[[list[str]], str],
    output_site: tuple[Path, str],
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nmpi.nmpi_user, "TOKENFILE", str(tmp_path / "hbptoken"))
    root, site = output_site
    (root / "spikes.dat").write_text("spikes\n")
    (root / "evil").write_text("written outside\n")
    workdir = tmp_path / "work"
    download = workdir / "download"

    # The premise: the unmodified client writes wherever an item's path says.
    forged = {"output_data": {"files": [{"url": f"{site}/evil", "path": "../escaped.txt"}]}}
    nmpi.Client.download_data(None, forged, local_dir=str(download))  # no instance needed
    assert (workdir / "escaped.txt").read_text() == "written outside\n"
    (workdir / "escaped.txt").unlink()

    alice = new_user()
    client = nmpi.Client(
        token=alice.token, job_service=server, user_info_endpoint=f"{server}/userinfo"
    )
    uri = client.submit_job(source=SCRIPT, platform=PLATFORM, collab_id=alice.collab)
    job_id = int(uri.rsplit("/", 1)[1])
    provider = api(api_key=new_provider([PLATFORM]))
    _claim(provider, job_id)
    for path in ["../escaped.txt", "../../escaped.txt", str(workdir / "escaped.txt")]:
        files = [{"url": f"{site}/evil", "path": path}]
        update = {"output_data": {"repository": "site", "files": files}}
        assert provider.put(f"/jobs/{job_id}", json=update).status_code == 400
    files = [
        {"url": f"{site}/spikes.dat", "path": "results/run 1/spikes.dat"},
        {"url": f"{site}/spikes.dat?copy", "path": "spikes.dat"},
    ]
    final = {"status": "finished", "output_data": {"repository": "site", "files": files}}
    assert provider.put(f"/jobs/{job_id}", json=final).status_code == 200

    saved = client.download_data(client.get_job(job_id), local_dir=str(download))
    assert len(saved) == 2
    for name in saved:
        assert Path(name).resolve().is_relative_to(download.resolve())
        assert Path(name).read_text() == "spikes\n"
    outside = [p for p in workdir.rglob("*") if not p.is_relative_to(download)]
    assert outside == []


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(
    st.text(min_size=0, max_size=2000).map(lambda path: "https://site.example/" + path)
    | st.builds(
        lambda segments: "https://site.example/" + "/".join(segments),
        st.lists(
            st.sampled_from(
                ["..", ".", "CON", "nul.txt", "~root", "a:b", "%2e%2e", "x" * 300, "é"]
            ),
            max_size=8,
        ),
    )
)
def test_paths_derived_from_urls_follow_the_rule(url: str) -> None:
    # The service derives a path for items published by URL only (domain/paths.py): it must
    # pass the same rule as a path a site gives, and fit the path limit of the response.
    from nmpi_job_queue import limits
    from nmpi_job_queue.domain.paths import path_from_url

    derived = path_from_url(url)
    assert unsafe_path_reason(derived) is None, (url, derived)
    assert len(derived) <= limits.PATH_MAX_CHARS
