"""Fixtures of the database-HA lab (lab.py): real etcd, Patroni/PostgreSQL and BIND9 in Docker.

- `lab` (module scope): a started Lab, shared by the tests of one module, removed afterwards.
  Tests that take a site down should restore it (`lab.restore_site`) or run last in their module.
- `lab_factory` (function scope): `lab_factory(**options)` starts a fresh Lab with Lab's keyword
  options (e.g. `web="responder"`, `patroni_ttl=20`); every lab it made is removed afterwards.
- `failover_config` (function scope): the path of an nmpi-failover YAML config for `lab`.
- `record_timing` (function scope): `record_timing("what", seconds)` adds a line to the
  "nmpi lab timings" section printed at the end of the run.

NMPI_IT_WEB=responder|job-queue chooses the sites' web tier (default: the job-queue API when its
image is built). Needs a Docker engine and the images: images/build.sh etcd patroni bind9
(and job-queue, optional).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import pytest

from .lab import Lab, sweep_stale_labs

TIMINGS_KEY = pytest.StashKey[list[str]]()


def _timings(config: pytest.Config) -> list[str]:
    if TIMINGS_KEY not in config.stash:
        config.stash[TIMINGS_KEY] = []
    return config.stash[TIMINGS_KEY]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(TIMINGS_KEY, [])
    if lines:
        terminalreporter.section("nmpi lab timings")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(f"the lab needs a Docker engine (make setup starts one): {error}")
    removed = sweep_stale_labs(client)
    if removed:
        print(f"removed stale labs of dead test runs: {', '.join(removed)}")
    yield client
    client.close()


@pytest.fixture
def record_timing(request: pytest.FixtureRequest) -> Callable[[str, float], None]:
    def record(what: str, seconds: float) -> None:
        line = f"{request.node.name}: {what}: {seconds:.1f}s"
        _timings(request.config).append(line)
        print(line)

    return record


def _start(
    docker_client: Any, workdir: Path, config: pytest.Config, name: str, **options: Any
) -> Lab:
    # NMPI_IT_WEB=responder|job-queue forces the web tier (default: job-queue when built).
    options.setdefault("web", os.environ.get("NMPI_IT_WEB", "auto"))
    lab = Lab(workdir, client=docker_client, **options)
    try:
        lab.start()
    except BaseException:
        lab.close()
        raise
    _timings(config).append(f"{name}: lab up ({lab.web_kind} web tier): {lab.timings}")
    return lab


@pytest.fixture(scope="module")
def lab(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("nmpi-lab")
    started = _start(docker_client, workdir, request.config, request.module.__name__)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def lab_factory(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Lab]]:
    made: list[Lab] = []

    def make(**options: Any) -> Lab:
        workdir = tmp_path_factory.mktemp("nmpi-lab")
        made.append(_start(docker_client, workdir, request.config, request.node.name, **options))
        return made[-1]

    try:
        yield make
    finally:
        for each in made:
            each.close()


@pytest.fixture
def failover_config(lab: Lab, tmp_path: Path) -> Path:
    """nmpi-failover's config for `lab` (journal under tmp_path), checked by its own loader."""
    from nmpi_failover.config import load_config

    path = lab.write_failover_config(tmp_path / "failover.yaml", journal=str(tmp_path / "j.jsonl"))
    load_config(path)  # raises ConfigError naming the keys if the lab and the format diverge
    return path
