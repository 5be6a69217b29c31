"""nmpi_common's tls_files entry point, run on localhost: what every role reads of its TLS files."""

from __future__ import annotations

import grp
import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.support import run_playbook

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.import_role:
        name: nmpi_common
        tasks_from: tls_files
      vars:
        nmpi_common_role: demo
        nmpi_common_tls_files: "{{ files }}"
        nmpi_common_tls_key_file: "{{ key }}"
    - ansible.builtin.copy:
        content: "{{ nmpi_common_tls | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
      check_mode: false
"""


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    ca, cert = tmp_path / "ca" / "ca.crt", tmp_path / "host" / "host.crt"
    key = tmp_path / "host" / "host.key"
    for path, text in ((ca, "ca"), (cert, "certificate"), (key, "key")):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    return ca, cert, key


def test_fingerprints_key_group_and_folders(tmp_path: Path) -> None:
    ca, cert, key = _files(tmp_path)
    out = tmp_path / "out.json"
    extra: dict[str, object] = {
        "files": [str(ca), str(cert), str(key)],
        "key": str(key),
        "out": str(out),
    }
    result = run_playbook(PLAY, tmp_path, extra)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(out.read_text())["demo"]
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p}" for p in (ca, cert, key)]
    assert seen["fingerprints"].splitlines() == lines
    assert seen["key_groups"] == [str(os.stat(key).st_gid)]
    assert grp.getgrgid(int(seen["key_groups"][0]))  # a group of this machine
    assert seen["dirs"] == [str(ca.parent), str(cert.parent)]


@pytest.mark.parametrize("check_mode", [False, True])
def test_missing_files_are_named_outside_check_mode(tmp_path: Path, check_mode: bool) -> None:
    ca, cert, key = _files(tmp_path)
    key.unlink()
    ca.unlink()
    out = tmp_path / "out.json"
    extra: dict[str, object] = {
        "files": [str(ca), str(cert), str(key)],
        "key": str(key),
        "out": str(out),
    }
    result = run_playbook(PLAY, tmp_path, extra, *(["--check"] if check_mode else []))
    if check_mode:
        # A fresh host in check mode: the pki role would make them; nothing to give the container.
        assert result.returncode == 0, result.stdout + result.stderr
        seen = json.loads(out.read_text())["demo"]
        assert seen["key_groups"] == []
        assert seen["fingerprints"].splitlines()[0] == f"missing  {ca}"
        return
    assert result.returncode != 0
    assert f"lacks {ca}, {key}, which the role demo needs" in result.stdout
