"""The shell entry points: Docker bring-up and the image catalogue."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import REPO, read_images_env, tool_env


def run(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=REPO, env=tool_env(**env), capture_output=True, text=True, timeout=120, check=False
    )


def test_docker_up_explains_what_to_install_on_other_systems(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=fedora\nID_LIKE="rhel centos"\n')
    result = run(
        ["scripts/docker-up.sh"],
        NMPI_OS_RELEASE=str(os_release),
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",  # no engine answers here
    )
    assert result.returncode == 1
    assert "not Debian/Ubuntu (ID=fedora)" in result.stderr
    assert "install Docker Engine" in result.stderr


def test_image_list_comes_from_images_env() -> None:
    env = read_images_env()
    result = run(["images/build.sh", "--list"])
    assert result.returncode == 0, result.stderr
    listed = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert list(listed) == env["NMPI_IMAGES"].split()
    assert listed["vm"] == f"{env['NMPI_IMAGE_VM']}:{env['NMPI_IMAGE_TAG']}"
    dockerfiles = {p.parent.name for p in (REPO / "images").glob("*/Dockerfile")}
    assert dockerfiles == set(listed)


def test_unlisted_dockerfile_is_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(REPO / "images", images)
    (images / "extra").mkdir()
    (images / "extra" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    result = run([str(images / "build.sh"), "--list"])
    assert result.returncode == 1
    assert "images/extra/Dockerfile is not listed in NMPI_IMAGES" in result.stderr


def test_unknown_image_name_is_refused() -> None:
    result = run(["images/build.sh", "no-such-image"])
    assert result.returncode == 1
    assert "unknown image 'no-such-image'" in result.stderr
