"""Verify container_images: the images are in the VM's engine with the controller's image IDs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

testinfra_hosts = ["all"]

REPO = Path(__file__).resolve().parents[5]


def images_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (REPO / "images" / "images.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


ENV = images_env()
IMAGES = [
    f"{ENV['NMPI_IMAGE_ETCD']}:{ENV['NMPI_IMAGE_TAG']}",
    f"{ENV['NMPI_IMAGE_BIND9']}:{ENV['NMPI_IMAGE_TAG']}",
]


def controller_id(image: str) -> str:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def host_archive(image: str) -> str:
    name, _, tag = image.rpartition(":")
    return f"/var/cache/nmpi/images/{name.replace('/', '_')}-{tag}.tar.gz"


@pytest.mark.parametrize("image", IMAGES)
def test_image_in_engine_with_controller_id(host: Any, image: str) -> None:
    on_host = host.check_output(f"docker image inspect --format '{{{{.Id}}}}' {image}")
    assert on_host == controller_id(image)


@pytest.mark.parametrize("image", IMAGES)
def test_archive_and_marker_on_host(host: Any, image: str) -> None:
    archive = host.file(host_archive(image))
    assert archive.is_file
    assert archive.user == "root"
    assert archive.mode == 0o640
    assert host.file(host_archive(image) + ".id").content_string.strip() == controller_id(image)


@pytest.mark.parametrize("image", IMAGES)
def test_controller_cache_holds_archive_and_id(image: str) -> None:
    name, _, tag = image.rpartition(":")
    archive = REPO / ".cache" / "image-archives" / f"{name}-{tag}.tar.gz"
    assert archive.is_file()
    assert (archive.parent / f"{archive.name}.id").read_text().strip() == controller_id(image)


def test_an_image_runs(host: Any) -> None:
    image = IMAGES[0]
    out = host.check_output(f"docker run --rm --entrypoint etcd {image} --version")
    assert "etcd Version" in out
