"""Fixtures of the suites that run against the local OpenStack."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devstack.labcloud import Site, build_site, connect, purge


@pytest.fixture(scope="package")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
    )
    return key


@pytest.fixture(scope="package")
def castor(openstack_lab: Path, ssh_key: Path) -> Iterator[Site]:
    """A test site in castor's region: servers a and b on one network, a floating IP on a.

    Built once for the package (two instances take minutes on a busy machine) and shared by
    the lab's own tests and nmpi-failover's Neutron actuator test; a test that moves the
    floating IP or stops a server puts it back."""
    site = Site("castor", "nmpitest", connect(openstack_lab, "lab-castor"), "10.81.251.0/24")
    try:
        yield build_site(site, ssh_key, ["a", "b"], with_fip=["a"])
    finally:
        purge(site)
