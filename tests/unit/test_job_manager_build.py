"""The Job Manager web app (platform/job_manager) as its own toolchain checks it: the build
that the platform role deploys (scripts/build-job-manager: npm ci from the lock file, type
check, vite build, compressed copies), its component tests (vitest), and the first page's
weight against its 500 kB gzipped budget. Its browser tests run on the lab
(tests/lab/test_web_job_manager_on_lab.py)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.support import REPO

APP = REPO / "platform" / "job_manager"


@pytest.fixture(scope="module")
def built() -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "build-job-manager")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_component_tests_pass(built: None) -> None:
    result = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=APP,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Colours off (CI=true turns some on): the summary line is matched as text.
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output[-4000:]
    # vitest's summary: "Tests  N passed (N)": a run that ran nothing is a failure.
    found = re.search(r"Tests\s+(\d+) passed", output)
    assert found, output[-2000:]
    assert int(found.group(1)) > 0


def test_first_page_under_its_weight_budget(built: None) -> None:
    result = subprocess.run(
        ["node", "scripts/size-report.mjs"],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "first page:" in result.stdout


def test_build_has_hashed_assets_and_compressed_copies(built: None) -> None:
    dist = APP / "dist"
    index = (dist / "index.html").read_text()
    # No inline script: the site's Content-Security-Policy allows scripts from files only.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index), index
    assets = list((dist / "assets").glob("*.js"))
    assert assets
    for asset in assets:
        assert re.search(r"-[A-Za-z0-9_-]{8,}\.js$", asset.name), f"{asset.name}: not hashed"
        assert asset.with_name(asset.name + ".gz").is_file(), f"{asset.name}: no .gz copy"
        assert asset.with_name(asset.name + ".br").is_file(), f"{asset.name}: no .br copy"
