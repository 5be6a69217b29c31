"""Verify docker_engine on the converged VM: the engine runs as configured and runs containers."""

from __future__ import annotations

import json
from typing import Any

import pytest

testinfra_hosts = ["all"]


def daemon_config(host: Any) -> dict[str, Any]:
    return json.loads(host.file("/etc/docker/daemon.json").content_string)  # type: ignore[no-any-return]


def test_engine_package_installed(host: Any) -> None:
    assert host.package("docker.io").is_installed


def test_engine_enabled_and_running(host: Any) -> None:
    service = host.service("docker")
    assert service.is_enabled
    assert service.is_running


def test_daemon_json_is_applied(host: Any) -> None:
    config = daemon_config(host)
    assert config["log-driver"] == "local"
    assert config["log-opts"] == {"max-size": "20m", "max-file": "5"}
    assert config["live-restore"] is True
    assert config["default-address-pools"] == [{"base": "172.30.0.0/16", "size": 24}]
    # What the running engine reports, not only what the file says.
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "local"
    assert info["LiveRestoreEnabled"] is True
    assert info["Driver"] == "overlay2"


def test_metrics_endpoint_answers(host: Any) -> None:
    metrics = host.check_output("busybox wget -qO- http://127.0.0.1:9323/metrics")
    assert "engine_daemon_engine_info" in metrics


def test_operator_in_docker_group(host: Any) -> None:
    assert "docker" in host.user("deployer").groups


@pytest.fixture
def probe_image(host: Any) -> str:
    """A one-binary image made inside the VM from busybox: no registry is needed."""
    host.check_output(
        "d=$(mktemp -d) && mkdir $d/bin && cp /bin/busybox $d/bin/ "
        "&& tar -C $d -c . | docker import - nmpi-probe:latest && rm -rf $d"
    )
    return "nmpi-probe:latest"


def test_a_container_runs_with_a_network_from_the_pool(host: Any, probe_image: str) -> None:
    out = host.check_output(f"docker run --rm {probe_image} /bin/busybox ip -4 -o addr show eth0")
    # The default bridge takes its subnet from the configured pool, not 172.17.0.0/16.
    assert " inet 172.30." in out, out
