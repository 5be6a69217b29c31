"""Verify data_volume inside the instance: the volume is formatted, mounted and in fstab."""

from __future__ import annotations

from typing import Any

testinfra_hosts = ["all"]


def test_data_volume_is_mounted(host: Any) -> None:
    mount = host.mount_point("/srv/nmpi")
    assert mount.exists
    assert mount.filesystem == "ext4"
    assert "noatime" in mount.options


def test_data_volume_is_in_fstab(host: Any) -> None:
    assert "/srv/nmpi ext4 defaults,noatime" in host.file("/etc/fstab").content_string


def test_data_volume_is_writable(host: Any) -> None:
    host.check_output("sudo sh -c 'echo kept > /srv/nmpi/proof && sync'")
    assert host.file("/srv/nmpi/proof").content_string.strip() == "kept"
