"""The services' virtualenv: the locked 'devstack' group of uv.lock, plus Nova's driver shim."""

from __future__ import annotations

import os
import re
import subprocess

from .commands import run
from .paths import REPO_ROOT, UV, Paths
from .supervisor import LabError

# Nova imports compute drivers only as nova.virt.<compute_driver>: this module is the bridge to
# the lab hypervisor, which lives in nmpi_lab_openstack (lab/plugins).
NOVA_SHIM = (
    "# Written by nmpi-devstack (lab/src/nmpi_devstack/venv.py) at every `up`:\n"
    "# Nova loads compute drivers only from nova.virt, so compute_driver = nmpi_lab.LabDriver\n"
    "# resolves here, to the lab hypervisor of lab/plugins.\n"
    "from nmpi_lab_openstack.nova_driver import LabDriver  # noqa: F401\n"
)


def sync(paths: Paths) -> None:
    """uv sync --only-group devstack --frozen into the lab's venv (a no-op when in sync)."""
    if not UV.exists():
        raise LabError(f"uv not found at {UV}: run `make setup` first")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(paths.venv),
        "SSL_CERT_FILE": os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
    }
    env.pop("VIRTUAL_ENV", None)  # uv would warn that it does not match the target
    run(
        [UV, "sync", "--only-group", "devstack", "--frozen"],
        paths.log("venv"),
        env=env,
        what="uv sync --only-group devstack (services venv)",
        timeout=1800,
        cwd=REPO_ROOT,
    )
    write_nova_shim(paths)


def write_nova_shim(paths: Paths) -> None:
    shim = paths.site_packages / "nova" / "virt" / "nmpi_lab.py"
    if not shim.parent.is_dir():
        raise LabError(f"nova is not installed in {paths.venv}")
    if not shim.exists() or shim.read_text() != NOVA_SHIM:
        shim.write_text(NOVA_SHIM)


def module_exists(paths: Paths, module: str) -> bool:
    """Whether the services venv can find a module (without importing it)."""
    code = (
        f"import importlib.util, sys\nsys.exit(0 if importlib.util.find_spec({module!r}) else 1)\n"
    )
    try:
        return (
            subprocess.run(
                [str(paths.bin / "python"), "-c", code],
                capture_output=True,
                check=False,
                timeout=60,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def package_versions(paths: Paths) -> dict[str, str]:
    """Installed distributions of the venv, from the dist-info folder names (no imports)."""
    versions = {}
    for entry in paths.site_packages.glob("*.dist-info"):
        m = re.match(r"(.+)-([^-]+)\.dist-info$", entry.name)
        if m:
            versions[m.group(1).lower().replace("_", "-")] = m.group(2)
    return versions
