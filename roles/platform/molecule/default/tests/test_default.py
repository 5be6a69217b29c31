"""Verify platform on the converged web VM, from the controller as a user would reach it:
HTTPS with the lab CA and the public name (SNI), the redirect, the headers, the API at the
root, the Job Manager's page, /metrics kept for monitoring, the real nmpi client submitting a
job, TLS to the database, the schema migrated, the NGINX exporter reading nginx's stub_status
(both on the VM's loopback only); then what a site does when API containers or its database go
away (/readyz 503, so nmpi-failover moves the name)."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nmpi
import nmpi.nmpi_user
import pytest
import testinfra

testinfra_hosts = ["platform-web"]

NAME = "nmpi.lab.example"
API = ("nmpi-job-queue-1", "nmpi-job-queue-2")
NGINX = "nmpi-nginx"
EXPORTER = "nmpi-nginx-exporter"
# nginx's stub_status and the NGINX exporter: on the VM's loopback only (the metrics proxy
# serves the exporter to the witness on the sites).
STATUS_PORT, EXPORTER_PORT = 8081, 9113
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
CA = EPHEMERAL / "pki" / "ca.crt"


@pytest.fixture(scope="module")
def address(host: Any) -> str:
    return str(host.interface("eth0").addresses[0])


@pytest.fixture(scope="module")
def db() -> Any:
    return testinfra.get_host(
        "ansible://platform-db", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )


class Site:
    """HTTPS to the web VM's address with the public name as SNI and Host, checked against the
    lab CA: what a client that resolved the public name to this site does."""

    def __init__(self, address: str) -> None:
        self.client = httpx.Client(
            base_url=f"https://{address}", verify=str(CA), headers={"Host": NAME}, timeout=15
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, extensions={"sni_hostname": NAME}, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, extensions={"sni_hostname": NAME}, **kwargs)


@pytest.fixture(scope="module")
def web(address: str) -> Iterator[Site]:
    site = Site(address)
    yield site
    site.client.close()


def inspect(host: Any, name: str) -> dict[str, Any]:
    return json.loads(host.check_output(f"docker inspect {name}"))[0]  # type: ignore[no-any-return]


def eventually(probe: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def readyz(web: Site) -> int:
    try:
        return web.get("/readyz").status_code
    except httpx.HTTPError:
        return 0


def test_api_containers_confined_on_loopback(host: Any) -> None:
    for index, name in enumerate(API, start=1):
        info = inspect(host, name)
        assert info["State"]["Running"]
        assert info["Config"]["User"] == "10001:10001"
        config = info["HostConfig"]
        assert config["NetworkMode"] == "host"
        assert config["RestartPolicy"]["Name"] == "unless-stopped"
        assert config["ReadonlyRootfs"] is True
        assert config["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in config["SecurityOpt"]
        assert f"NMPI_BIND=127.0.0.1:{8000 + index}" in info["Config"]["Env"]
    listening = host.check_output("ss -Hltn")
    assert "127.0.0.1:8001 " in listening
    assert "127.0.0.1:8002 " in listening
    assert "0.0.0.0:8001 " not in listening


def test_nginx_unprivileged(host: Any) -> None:
    info = inspect(host, NGINX)
    assert info["State"]["Running"]
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert [c.removeprefix("CAP_") for c in info["HostConfig"]["CapAdd"]] == ["NET_BIND_SERVICE"]
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    pid = info["State"]["Pid"]
    status = host.file(f"/proc/{pid}/status").content_string
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] == "10002"
    assert int(fields["CapEff"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE only


def test_files_modes(host: Any) -> None:
    env = host.file("/etc/nmpi/platform/job-queue.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    assert "NMPI_DATABASE_URL=postgresql://nmpi:" in env.content_string
    conf = host.file("/etc/nmpi/platform/nginx/nginx.conf")
    assert (conf.user, conf.gid, conf.mode) == ("root", 10002, 0o640)


def test_readyz_over_tls_with_the_public_name(web: Site) -> None:
    reply = web.get("/readyz")
    assert reply.status_code == 200, reply.text
    assert reply.http_version in ("HTTP/1.1", "HTTP/2")


def test_http_redirects_to_https_on_the_public_name(address: str) -> None:
    reply = httpx.get(f"http://{address}/jobs/?size=1", headers={"Host": NAME}, timeout=10)
    assert reply.status_code == 301
    assert reply.headers["location"] == f"https://{NAME}/jobs/?size=1"


def test_security_headers(web: Site) -> None:
    headers = web.get("/").headers
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "server" not in headers or "nginx/" not in headers["server"]


def test_api_at_the_root(web: Site) -> None:
    info = web.get("/").json()
    assert info["version"] == "3"


def test_request_id_goes_through(web: Site) -> None:
    request_id = uuid.uuid4().hex
    reply = web.get("/", headers={"X-Request-ID": request_id})
    assert reply.headers["x-request-id"] == request_id


def test_a_body_over_the_sites_limit_is_refused_in_json(web: Site) -> None:
    """Over platform_client_max_body_size (16m), nginx answers itself: in the API's shape (the
    web app shows `detail`), with the security headers, not nginx's HTML page."""
    reply = web.post(
        "/code-archives/?collab=c&filename=a.tar",
        content=b"\0" * (16 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status_code == 413
    assert reply.headers["content-type"].startswith("application/json")
    assert "at most 16m" in reply.json()["detail"]
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_job_manager_page(web: Site) -> None:
    assert web.get("/app").status_code == 301
    page = web.get("/app/")
    assert page.status_code == 200
    assert "Job Manager" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"  # repeated in the location
    # A path of the single-page app falls back to its index.
    assert "Job Manager" in web.get("/app/jobs/42").text


def test_metrics_only_for_monitoring(web: Site, host: Any) -> None:
    assert web.get("/metrics").status_code == 403
    # From an allowed address (loopback here): the API's metrics.
    script = (
        "import ssl, urllib.request; "
        "ctx = ssl.create_default_context(cafile='/etc/nmpi/pki/ca.crt'); "
        "print(urllib.request.urlopen('https://127.0.0.1/metrics', context=ctx).read().decode())"
    )
    assert "nmpi_http_requests_total" in host.check_output(f'python3 -c "{script}"')


def local_get(host: Any, url: str) -> tuple[int, str]:
    """(status, body) of a plain-HTTP GET from inside the VM (its loopback); the VM has no curl."""
    script = (
        "import sys, urllib.error, urllib.request\n"
        "try:\n"
        f"    reply = urllib.request.urlopen({url!r}, timeout=10)\n"
        "except urllib.error.HTTPError as error:\n"
        "    reply = error\n"
        "sys.stdout.write(str(reply.status) + chr(10) + reply.read().decode())\n"
    )
    status, _, body = host.check_output(f"python3 -c {shlex.quote(script)}").partition("\n")
    return int(status), body


def test_nginx_exporter_reads_the_stub_status(host: Any, web: Site) -> None:
    assert web.get("/readyz").status_code == 200  # at least one request counted
    status, page = local_get(host, f"http://127.0.0.1:{STATUS_PORT}/stub_status")
    assert status == 200
    assert page.startswith("Active connections:")
    assert local_get(host, f"http://127.0.0.1:{STATUS_PORT}/")[0] == 404
    status, body = local_get(host, f"http://127.0.0.1:{EXPORTER_PORT}/metrics")
    assert status == 200
    lines = body.splitlines()
    assert "nginx_up 1" in lines
    values = {
        line.split()[0]: float(line.split()[1])
        for line in lines
        if line.startswith("nginx_") and " " in line
    }
    assert values["nginx_connections_accepted"] > 0
    assert values["nginx_http_requests_total"] > 0


def test_stub_status_and_exporter_on_loopback_only(host: Any, address: str) -> None:
    listening = host.check_output("ss -Hltn")
    for port in (STATUS_PORT, EXPORTER_PORT):
        assert f"127.0.0.1:{port} " in listening
        for wildcard in ("0.0.0.0", "*", "[::]"):
            assert f"{wildcard}:{port} " not in listening
        # From the controller, at the VM's address: nothing listens there.
        with pytest.raises((ConnectionRefusedError, TimeoutError)):
            socket.create_connection((address, port), timeout=3).close()


def test_nginx_exporter_confined(host: Any) -> None:
    info = inspect(host, EXPORTER)
    assert info["State"]["Running"]
    assert info["Config"]["User"] == "100:101"
    assert info["Config"]["Image"].startswith("nmpi/nginx-exporter:")
    config = info["HostConfig"]
    assert config["NetworkMode"] == "host"
    assert config["RestartPolicy"]["Name"] == "unless-stopped"
    assert config["ReadonlyRootfs"] is True
    assert config["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in config["SecurityOpt"]
    assert not info["Mounts"]


@pytest.fixture(scope="module")
def account(host: Any) -> tuple[str, str, str]:
    """A user with a token, editor of a collab: the admin CLI inside an API container."""
    user, collab = f"alice-{uuid.uuid4().hex[:6]}", f"collab-{uuid.uuid4().hex[:6]}"
    cli = f"docker exec {API[0]} nmpi-job-queue"
    host.check_output(f"{cli} user add {user} --name Alice --email {user}@example.org")
    host.check_output(f"{cli} member add {user} {collab} --role editor")
    token = host.check_output(f"{cli} token create {user}").strip()
    return user, collab, token


def test_nmpi_client_submits_a_job(
    account: tuple[str, str, str], address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The unmodified client, through nginx, TLS checked against the lab CA (the certificate
    # also names the VM's address). It caches its token in ~/.hbptoken: keep that out.
    monkeypatch.setattr(nmpi.nmpi_user, "TOKENFILE", str(tmp_path / "hbptoken"))
    # The 0.11.2 client ignores `verify` for its userinfo call (requests' default bundle):
    # with a private CA, users point REQUESTS_CA_BUNDLE at it, which every call honours.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CA))
    user, collab, token = account
    client = nmpi.Client(
        token=token,
        job_service=f"https://{address}",
        user_info_endpoint=f"https://{address}/userinfo",
        verify=str(CA),
    )
    assert client.username == user
    assert collab in client.my_collabs()
    uri = client.submit_job(source="print('hello')", platform="SpiNNaker", collab_id=collab)
    assert client.job_status(uri) == "submitted"
    assert uri in client.queued_jobs()


def test_post_job_with_a_token(web: Site, account: tuple[str, str, str]) -> None:
    _, collab, token = account
    reply = web.post(
        "/jobs/",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "code": "print(1)",
            "command": "run.py",
            "collab": collab,
            "hardware_platform": "BrainScaleS",
        },
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "submitted"
    assert web.post("/jobs/", json={"code": "x", "collab": collab}).status_code in (401, 403)


def test_provider_key_registered(web: Site) -> None:
    """platform_provider_keys: the key the deployment keeps serves its platform's queue only."""
    key = (EPHEMERAL / "provider-key").read_text().strip()
    provider = {"x-api-key": key}
    assert web.get("/jobs/next/SpiNNaker", headers=provider).status_code in (200, 404)
    assert web.get("/jobs/next/BrainScaleS-2", headers=provider).status_code == 403
    assert web.get("/jobs/next/SpiNNaker", headers={"x-api-key": key[:-1]}).status_code == 401


def test_database_connections_use_tls(db: Any, web: Site) -> None:
    assert web.get("/readyz").status_code == 200
    query = (
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a "
        "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'nmpi'"
    )
    tls, total = db.check_output(f'runuser -u postgres -- psql -tA -F" " -c "{query}"').split()
    assert int(total) > 0
    assert tls == total


def test_schema_migrated_once(db: Any) -> None:
    version = db.check_output(
        'runuser -u postgres -- psql -d nmpi -tA -c "SELECT version_num FROM alembic_version"'
    )
    # The newest migration the image carries: its file names start with the revision.
    package = Path(__file__).parents[5] / "platform/job_queue/src/nmpi_job_queue"
    versions = package / "migrations/versions"
    head = max(path.name.split("_", 1)[0] for path in versions.glob("[0-9]*_*.py"))
    assert version.strip() == head


def converge(*options: str, **extra_vars: object) -> tuple[int, str, int]:
    """Run the scenario's converge.yml again: (return code, output, tasks changed)."""
    scenario = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).parent.parent))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent),
            str(scenario / "converge.yml"),
            "-e",
            json.dumps(extra_vars),
            *options,
        ],
        # Plain output to count "changed=" in: molecule forces colour on its children.
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())
    changed = sum(int(n) for n in re.findall(r" : ok=\d+ changed=(\d+) ", output))
    return result.returncode, output, changed


def test_new_settings_roll_out_without_failed_requests(host: Any, web: Site) -> None:
    """A changed setting recreates the API containers one at a time; requests keep working."""
    before = {name: inspect(host, name)["Id"] for name in API}
    # A setting that changes nothing in local identity mode, new at every run.
    setting = {"NMPI_OIDC_CACHE_SECONDS": str(int(time.time()) % 3000)}
    failures: list[str] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                reply = web.get("/")
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text[:100]}")
            except httpx.HTTPError as error:
                failures.append(repr(error))
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        rc, out, changed = converge(platform_api_env=setting)
    finally:
        done.set()
        poller.join(timeout=10)
    assert rc == 0, out[-3000:]
    assert changed >= 3  # the settings file and both containers
    assert all(inspect(host, name)["Id"] != before[name] for name in API)
    env = host.file("/etc/nmpi/platform/job-queue.env").content_string
    assert f"NMPI_OIDC_CACHE_SECONDS={setting['NMPI_OIDC_CACHE_SECONDS']}" in env
    assert failures == []
    # Nothing left to do with the same variables; no migration ran again.
    rc, out, changed = converge(platform_api_env=setting)
    assert (rc, changed) == (0, 0), out[-3000:]


class Traffic:
    """Users at work through nginx while the platform changes: GETs, and job POSTs with a
    token (not idempotent: nginx must never have one cut or sent twice). A new connection
    per request, as the nmpi client makes (requests without a session)."""

    def __init__(self, address: str, collab: str, token: str) -> None:
        self.address, self.collab, self.token = address, collab, token
        self.failures: list[str] = []
        self.created: list[str] = []
        self.gets = 0
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(self.get,), daemon=True),
            threading.Thread(target=self.run, args=(self.post,), daemon=True),
            threading.Thread(target=self.run, args=(self.post,), daemon=True),
        ]

    def run(self, request: Callable[[Site], None]) -> None:
        site = Site(self.address)
        site.client.close()
        site.client = httpx.Client(
            base_url=f"https://{self.address}",
            verify=str(CA),
            headers={"Host": NAME, "Authorization": f"Bearer {self.token}"},
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        with site.client:
            while not self.done.is_set():
                try:
                    request(site)
                except httpx.HTTPError as error:
                    self.failures.append(f"{request.__name__}: {error!r}")
                time.sleep(0.02)

    def get(self, site: Site) -> None:
        reply = site.get("/jobs/", params={"collab": self.collab, "size": 5})
        if reply.status_code != 200:
            self.failures.append(f"GET {reply.status_code} {reply.text[:100]}")
        self.gets += 1

    def post(self, site: Site) -> None:
        job = {"code": "print(1)", "command": "run.py", "collab": self.collab}
        reply = site.post("/jobs/", json={**job, "hardware_platform": "BrainScaleS"})
        if reply.status_code != 201:
            self.failures.append(f"POST {reply.status_code} {reply.text[:100]}")
        else:
            self.created.append(str(reply.json()["id"]))

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        time.sleep(2)  # under way before the change starts
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(2)  # and a while after it ended
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_rolling_upgrade_without_failed_requests(
    host: Any, web: Site, address: str, account: tuple[str, str, str]
) -> None:
    """platform_action=upgrade with a new API image: each container drained from nginx,
    replaced and put back in turn while users GET and POST; none of them sees an error and
    every job acknowledged is stored."""
    _, collab, token = account
    # A new image (a new ID under a new tag), made in the VM from the current one.
    image = f"nmpi/job-queue:upgrade-{uuid.uuid4().hex[:8]}"
    current = inspect(host, API[0])["Config"]["Image"]
    scratch = host.check_output(f"docker create {current}").strip()
    try:
        host.check_output(f"docker commit --change 'LABEL org.nmpi.test=upgrade' {scratch} {image}")
    finally:
        host.check_output(f"docker rm {scratch}")
    before = {name: inspect(host, name)["Id"] for name in API}
    with Traffic(address, collab, token) as traffic:
        rc, out, _ = converge(platform_action="upgrade", platform_api_image=image)
    assert rc == 0, out[-3000:]
    assert traffic.failures == []
    assert traffic.gets > 20
    assert len(traffic.created) > 20
    assert all(inspect(host, name)["Config"]["Image"] == image for name in API)
    assert all(inspect(host, name)["Id"] != before[name] for name in API)
    # Each container went out of nginx's upstream and back: two reloads per container.
    assert out.count("TASK [platform : Service | Drain | Reload nginx]") == len(API), out[-3000:]
    assert out.count("TASK [platform : Service | Undrain | Reload nginx]") == len(API)
    # Every job the platform acknowledged is there.
    headers = {"Authorization": f"Bearer {token}"}
    missing = [
        job
        for job in traffic.created
        if web.get(f"/jobs/{job}", headers=headers).status_code != 200
    ]
    assert missing == []


def test_stop_then_deploy_starts_again(host: Any, web: Site) -> None:
    """platform_action=stop: check mode changes nothing, then nginx and the API containers
    stop (a second run changes nothing); the next deploy starts them and the site serves."""
    containers = (NGINX, *API)
    rc, out, _ = converge("--check", platform_action="stop")
    assert rc == 0, out[-3000:]
    assert all(inspect(host, name)["State"]["Running"] for name in containers)
    rc, out, changed = converge(platform_action="stop")
    assert rc == 0, out[-3000:]
    assert changed == 2  # the loop over the three containers, and the boot unit disabled
    assert not any(inspect(host, name)["State"]["Running"] for name in containers)
    # A stopped platform stays stopped across a reboot: its boot unit is off.
    assert host.run("systemctl is-enabled nmpi-platform-boot").stdout.strip() == "disabled"
    assert readyz(web) == 0  # refused: nmpi-failover would move the name away
    rc, out, changed = converge(platform_action="stop")
    assert (rc, changed) == (0, 0), out[-3000:]
    # The deploy (the scenario's own image again) starts everything.
    rc, out, _ = converge()
    assert rc == 0, out[-3000:]
    assert all(inspect(host, name)["State"]["Running"] for name in containers)
    assert host.run("systemctl is-enabled nmpi-platform-boot").stdout.strip() == "enabled"
    assert eventually(lambda: readyz(web) == 200)


def test_one_api_container_down_the_site_still_serves(host: Any, web: Site) -> None:
    host.check_output(f"docker stop {API[0]}")
    try:
        assert all(web.get("/readyz").status_code == 200 for _ in range(10))
    finally:
        host.check_output(f"docker start {API[0]}")


def test_no_api_container_answers_503(host: Any, web: Site) -> None:
    host.check_output(f"docker stop {' '.join(API)}")
    try:
        reply = web.get("/readyz")
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "2"
        assert "unavailable" in reply.json()["detail"]
    finally:
        host.check_output(f"docker start {' '.join(API)}")
    assert eventually(lambda: readyz(web) == 200)


def test_database_down_readyz_503(db: Any, web: Site) -> None:
    # The site cannot take writes: /readyz says so, and nmpi-failover moves the name away.
    db.check_output("systemctl stop postgresql@15-main")
    try:
        assert eventually(lambda: readyz(web) == 503, 30)
    finally:
        db.check_output("systemctl start postgresql@15-main")
    assert eventually(lambda: readyz(web) == 200, 60)
