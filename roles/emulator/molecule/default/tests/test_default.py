"""Verify emulator on the converged VM: both emulators run confined (uid 10001, read-only, no
capabilities, the role's seccomp profile in effect, which refuses keyctl and bpf yet lets
bubblewrap make its namespaces), the API keys are 0400 files that `docker inspect` and the
process list never show, the metrics are on loopback only with nmpi_emulator_up 1, and the
outputs server serves a job's file over TLS with the CA (with CORS for the Job Manager's origin
only) while it refuses symbolic links, path traversal, other methods and everything outside
/<site>/<job id>/...; then the stop action."""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

testinfra_hosts = ["emulator-site"]

SITES = {"spinnaker": 9310, "brainscales": 9311}
EMULATORS = tuple(f"nmpi-emulator-{site}" for site in SITES)
NGINX = "nmpi-emulator-outputs"
PORT = 8443
DATA = "/srv/nmpi/emulator"
CONFIG = "/etc/nmpi/emulator"
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
CA = EPHEMERAL / "pki" / "ca.crt"
JOB = 123
# molecule.yml's emulator_outputs_cors_origins: the Job Manager's origin.
CORS_ORIGIN = "https://nmpi.molecule.test"


def key_of(site: str) -> str:
    # The password lookup's file: the key, then " salt=..." when it has one.
    return (EPHEMERAL / f"api-key-{site}").read_text().split()[0]


@pytest.fixture(scope="module")
def address(host: Any) -> str:
    return str(host.interface("eth0").addresses[0])


def inspect(host: Any, name: str) -> dict[str, Any]:
    return json.loads(host.check_output(f"docker inspect {name}"))[0]  # type: ignore[no-any-return]


def eventually(probe: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def raw(address: str, path: str, method: str = "GET") -> http.client.HTTPResponse:
    """One request with the path exactly as given (no client-side normalisation of '..')."""
    context = ssl.create_default_context(cafile=str(CA))
    connection = http.client.HTTPSConnection(address, PORT, context=context, timeout=15)
    connection.request(method, path, body=b"x" if method == "POST" else None)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.fixture(scope="module")
def job_files(host: Any) -> None:
    """A finished job's folder as the emulator leaves it, plus what a hostile job could leave."""
    folder = f"{DATA}/spinnaker/{JOB}"
    script = f"""
set -e
mkdir -p {folder}/sub
printf 'spikes\\n' > {folder}/out.txt
printf '<script>alert(1)</script>' > {folder}/page.html
printf '<svg xmlns="http://www.w3.org/2000/svg"/>' > {folder}/plot.svg
printf 'PNG' > {folder}/sub/plot.png
ln -sfn /etc/passwd {folder}/passwd
ln -sfn /etc {folder}/etc
printf '{{}}' > {DATA}/spinnaker/{JOB}.report-sent.json
chown -R 10001:10001 {folder} {DATA}/spinnaker/{JOB}.report-sent.json
chown -h 10001:10001 {folder}/passwd {folder}/etc
"""
    host.check_output(f"sh -c {shlex.quote(script)}")


def test_emulators_run_confined(host: Any) -> None:
    for name in EMULATORS:
        info = inspect(host, name)
        assert info["State"]["Running"], name
        assert info["Config"]["User"] == "10001:10001"
        config = info["HostConfig"]
        assert config["NetworkMode"] == "host"
        assert config["RestartPolicy"]["Name"] == "unless-stopped"
        assert config["ReadonlyRootfs"] is True
        assert config["CapDrop"] == ["ALL"]
        assert not config["CapAdd"]
        assert config["Init"] is True
        assert config["PidsLimit"] == 4096
        assert "/tmp" in config["Tmpfs"]
        # systempaths=unconfined (the CLI's name for these two): nothing masked or read-only
        # in /proc.
        assert config["MaskedPaths"] == []
        assert config["ReadonlyPaths"] == []
        options = config["SecurityOpt"]
        assert "no-new-privileges" in options
        profiles = [o.split("=", 1)[1] for o in options if o.startswith("seccomp=")]
        assert len(profiles) == 1
        profile = json.loads(profiles[0])
        assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
        refused = {n for rule in profile["syscalls"] for n in rule["names"]}
        assert {"keyctl", "bpf", "ptrace", "userfaultfd", "setns"} <= refused
        assert not {"clone", "clone3", "unshare", "mount", "umount2", "pivot_root"} & refused
        # Drained on stop: the drain timeout (converge.yml: 10) + 60.
        assert info["Config"]["StopTimeout"] == 70


def test_processes_unprivileged_under_seccomp(host: Any) -> None:
    for name in EMULATORS:
        for pid in host.check_output(f"docker top {name} -o pid").split()[1:]:
            status = host.file(f"/proc/{pid}/status").content_string
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            assert fields["Uid"].split() == ["10001"] * 4, name
            assert int(fields["CapEff"], 16) == 0
            assert int(fields["CapBnd"], 16) == 0
            assert fields["NoNewPrivs"].strip() == "1"
            assert fields["Seccomp"].strip() == "2"  # a filter, the profile's


SYSCALL_PROBE = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
for name, number in (("keyctl", 250), ("bpf", 321), ("ptrace", 101), ("getpid", 39)):
    ctypes.set_errno(0)
    result = libc.syscall(number, 0, 0, 0, 0, 0)
    print(name, result, errno.errorcode.get(ctypes.get_errno(), "0"))
"""


def test_profile_refuses_keyctl_and_bpf_but_bwrap_works(host: Any) -> None:
    name = EMULATORS[0]
    probe = host.check_output(
        f"docker exec {name} /opt/nmpi/bin/python -c {shlex.quote(SYSCALL_PROBE)}"
    )
    results = {line.split()[0]: line.split()[1:] for line in probe.splitlines()}
    assert results["keyctl"] == ["-1", "EPERM"]
    assert results["bpf"] == ["-1", "EPERM"]
    assert results["ptrace"] == ["-1", "EPERM"]
    assert results["getpid"][1] == "0"
    # The sandbox the jobs run in: new user, pid, network... namespaces, a fresh /proc.
    sandboxed = (
        f"docker exec {name} bwrap --unshare-all --die-with-parent --ro-bind /usr /usr "
        "--ro-bind /opt /opt --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
        "--symlink usr/bin /bin --proc /proc --dev /dev --tmpfs /tmp "
        "/opt/nmpi/bin/python -c 'import os; print(len(os.listdir(\"/proc\")))'"
    )
    # A profile that refused bwrap would fail the same way every time (EPERM, exit 1). Once, in
    # CI with the lab beside it, the sandboxed python was SIGKILLed from outside (137, no output):
    # that is retried, and the container's restart count says the service itself did not die.
    result = host.run(sandboxed)
    for _ in range(2):
        if result.rc != 137:
            break
        time.sleep(2)
        result = host.run(sandboxed)
    assert result.rc == 0, (result.rc, result.stdout, result.stderr)
    assert int(result.stdout.split()[-1]) > 0
    assert inspect(host, name)["RestartCount"] == 0


def test_selfcheck_passed_in_each_container(host: Any) -> None:
    for site, name in zip(SITES, EMULATORS, strict=True):
        record = host.file(f"{CONFIG}/{site}/selfcheck-passed").content_string.strip()
        assert record == inspect(host, name)["Id"]


def test_key_files_private_and_never_shown(host: Any) -> None:
    for site, name in zip(SITES, EMULATORS, strict=True):
        key = key_of(site)
        path = f"{CONFIG}/{site}/api-key"
        info = host.file(path)
        assert (info.uid, info.gid, info.mode) == (10001, 10001, 0o400)
        assert host.check_output(f"cat {path}").strip() == key
        assert key not in host.check_output(f"docker inspect {name}")
        for pid in host.check_output(f"docker top {name} -o pid").split()[1:]:
            assert key not in host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
            assert key not in host.check_output(f"tr '\\0' ' ' < /proc/{pid}/environ")
        inside = inspect(host, name)["Config"]["Cmd"]
        assert inside[inside.index("--api-key-file") + 1] == path


def test_metrics_on_loopback_only(host: Any, address: str) -> None:
    listening = host.check_output("ss -Hltn")
    for site, port in SITES.items():
        assert f"127.0.0.1:{port} " in listening
        assert f"0.0.0.0:{port} " not in listening
        assert f"*:{port} " not in listening
        metrics = host.check_output(
            f"python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())\""
        )
        assert re.search(r"(?m)^nmpi_emulator_up\{[^}]*\} 1\.0$", metrics), site
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{address}:{port}/metrics", timeout=5)


def test_emulators_keep_running_without_a_queue(host: Any) -> None:
    """The queue's name resolves nowhere: the emulators back off, they do not exit."""
    for name in EMULATORS:
        assert inspect(host, name)["RestartCount"] == 0
        logs = host.run(f"docker logs --tail 50 {name}")
        assert "queue unreachable" in logs.stdout + logs.stderr


def test_outputs_nginx_unprivileged(host: Any) -> None:
    info = inspect(host, NGINX)
    assert info["State"]["Running"]
    config = info["HostConfig"]
    assert config["ReadonlyRootfs"] is True
    assert config["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in config["SecurityOpt"]
    assert f"{DATA}:{DATA}:ro" in config["Binds"]
    pid = info["State"]["Pid"]
    status = host.file(f"/proc/{pid}/status").content_string
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] == "10002"
    assert int(fields["CapEff"], 16) == 0
    conf = host.file(f"{CONFIG}/nginx/nginx.conf")
    assert (conf.user, conf.gid, conf.mode) == ("root", 10002, 0o640)
    for site in SITES:
        root = host.file(f"{DATA}/{site}")
        assert (root.uid, root.gid, root.mode) == (10001, 10001, 0o750)


@pytest.mark.usefixtures("job_files")
def test_a_jobs_file_served_over_tls(address: str) -> None:
    reply = httpx.get(
        f"https://{address}:{PORT}/spinnaker/{JOB}/out.txt", verify=str(CA), timeout=15
    )
    assert reply.status_code == 200
    assert reply.text == "spikes\n"
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in reply.headers
    assert "sandbox" in reply.headers["content-security-policy"]
    image = httpx.get(
        f"https://{address}:{PORT}/spinnaker/{JOB}/sub/plot.png", verify=str(CA), timeout=15
    )
    assert image.status_code == 200
    assert "content-disposition" not in image.headers
    head = httpx.head(
        f"https://{address}:{PORT}/spinnaker/{JOB}/out.txt", verify=str(CA), timeout=15
    )
    assert head.status_code == 200


@pytest.mark.usefixtures("job_files")
@pytest.mark.parametrize("name", ["page.html", "plot.svg"])
def test_active_content_is_a_download(address: str, name: str) -> None:
    reply = httpx.get(
        f"https://{address}:{PORT}/spinnaker/{JOB}/{name}", verify=str(CA), timeout=15
    )
    assert reply.status_code == 200
    assert reply.headers["content-disposition"] == "attachment"
    assert reply.headers["x-content-type-options"] == "nosniff"


@pytest.mark.usefixtures("job_files")
@pytest.mark.parametrize(
    "path",
    [
        f"/spinnaker/{JOB}/passwd",  # a symbolic link to /etc/passwd
        f"/spinnaker/{JOB}/etc/passwd",  # through a linked folder
        f"/spinnaker/{JOB}/../../../etc/passwd",
        f"/spinnaker/{JOB}/..%2f..%2f..%2fetc%2fpasswd",
        f"/spinnaker/{JOB}/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"/spinnaker/{JOB}/../{JOB}.report-sent.json",
        f"/spinnaker/{JOB}.report-sent.json",
        f"/spinnaker/{JOB}/",
        "/spinnaker/",
        "/",
        "/other/123/out.txt",
        "/spinnaker/abc/out.txt",
        f"/brainscales/{JOB}/out.txt",
    ],
)
def test_refused_paths(address: str, path: str) -> None:
    response = raw(address, path)
    assert response.status in (400, 403, 404), (path, response.status)


@pytest.mark.usefixtures("job_files")
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_only_get_and_head(address: str, method: str) -> None:
    assert raw(address, f"/spinnaker/{JOB}/out.txt", method).status == 405


@pytest.mark.usefixtures("job_files")
def test_cors_for_the_job_managers_origin_only(address: str) -> None:
    url = f"https://{address}:{PORT}/spinnaker/{JOB}/out.txt"

    def get(origin: str | None, method: str = "GET", path: str = url) -> httpx.Response:
        headers = {"Origin": origin} if origin is not None else {}
        return httpx.request(method, path, headers=headers, verify=str(CA), timeout=15)

    for method in ("GET", "HEAD"):
        allowed = get(CORS_ORIGIN, method)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == CORS_ORIGIN
        assert allowed.headers["vary"] == "Origin"
        assert "access-control-allow-credentials" not in allowed.headers
    # A missing file says so to the Job Manager too (rather than a CORS failure).
    missing = get(CORS_ORIGIN, path=f"https://{address}:{PORT}/spinnaker/{JOB}/missing.json")
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == CORS_ORIGIN
    # Any other origin (one with the same name, another port, a longer name), or none: no header.
    for other in (
        "https://elsewhere.molecule.test",
        f"{CORS_ORIGIN}:8443",
        "http://nmpi.molecule.test",
        f"{CORS_ORIGIN}.evil.test",
        "null",
        None,
    ):
        refused = get(other)
        assert refused.status_code == 200, other
        assert "access-control-allow-origin" not in refused.headers, other
        assert refused.headers["vary"] == "Origin"
    # No preflight: OPTIONS stays refused (test_only_get_and_head).
    assert get(CORS_ORIGIN, "OPTIONS").status_code == 405


def test_outputs_need_the_ca(address: str) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://{address}:{PORT}/spinnaker/{JOB}/out.txt", timeout=15)


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
        timeout=900,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())
    changed = sum(int(n) for n in re.findall(r" : ok=\d+ changed=(\d+) ", output))
    return result.returncode, output, changed


def test_stop_then_deploy_starts_again(host: Any, address: str) -> None:
    """emulator_action=stop: check mode changes nothing, then the emulators (drained) and the
    outputs nginx stop (a second run changes nothing); the next deploy starts them again."""
    containers = (*EMULATORS, NGINX)
    rc, out, _ = converge("--check", emulator_action="stop")
    assert rc == 0, out[-3000:]
    assert all(inspect(host, name)["State"]["Running"] for name in containers)
    rc, out, changed = converge(emulator_action="stop")
    assert rc == 0, out[-3000:]
    assert changed == 1  # one task: the loop over the three containers
    states = {name: inspect(host, name)["State"] for name in containers}
    assert not any(state["Running"] for state in states.values())
    # Drained, not killed: the emulators ended by themselves on SIGTERM (tini passes their 0 on).
    assert all(states[name]["ExitCode"] == 0 for name in EMULATORS), states
    rc, out, changed = converge(emulator_action="stop")
    assert (rc, changed) == (0, 0), out[-3000:]
    rc, out, _ = converge()
    assert rc == 0, out[-3000:]
    assert all(inspect(host, name)["State"]["Running"] for name in containers)
    assert eventually(lambda: raw(address, f"/spinnaker/{JOB}/nonexistent").status == 404)
