"""outputs: the files a run created or changed, with hash, type and URL."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nmpi_emulator.outputs import collect, snapshot

BASE = "https://data.example.org/jobs"


def test_new_and_changed_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "run.py").write_text("print(1)\n")
    (tmp_path / "kept.txt").write_text("same\n")
    (tmp_path / "changed.txt").write_text("before\n")
    before = snapshot(tmp_path)
    assert set(before) == {"run.py", "kept.txt", "changed.txt"}

    (tmp_path / "changed.txt").write_text("after, longer\n")
    (tmp_path / "results" / "run 1").mkdir(parents=True)
    (tmp_path / "results" / "run 1" / "spikes.pkl").write_bytes(b"\x00" * 10)
    (tmp_path / "plot.png").write_bytes(b"png")
    (tmp_path / "report.json").write_text("{}")

    collected = collect(tmp_path, before, BASE + "/", 42, exclude={"report.json"})
    assert collected.omitted == 0
    assert [f["path"] for f in collected.files] == [
        "changed.txt",
        "plot.png",
        "results/run 1/spikes.pkl",
    ]
    spikes = collected.files[2]
    assert spikes == {
        "url": f"{BASE}/42/results/run%201/spikes.pkl",
        "path": "results/run 1/spikes.pkl",
        "size": 10,
        "hash": hashlib.sha256(b"\x00" * 10).hexdigest(),
        "content_type": "application/octet-stream",
    }
    assert collected.files[1]["content_type"] == "image/png"
    assert collected.files[0]["content_type"] == "text/plain"


def test_a_file_rewritten_with_the_same_size_counts_as_changed(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("aaaa")
    before = snapshot(tmp_path)
    os.utime(tmp_path / "data.txt", ns=(1, before["data.txt"][1] + 1_000_000))
    assert [f["path"] for f in collect(tmp_path, before, BASE, 1).files] == ["data.txt"]


def test_links_and_special_files_are_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    job = tmp_path / "job"
    job.mkdir()
    before = snapshot(job)
    os.symlink(outside / "secret.txt", job / "link.txt")
    os.symlink(outside, job / "linked_dir")
    os.mkfifo(job / "fifo")
    (job / "real.txt").write_text("real")
    collected = collect(job, before, BASE, 7)
    assert [f["path"] for f in collected.files] == ["real.txt"]
    assert snapshot(job).keys() == {"real.txt"}


def test_the_number_of_files_is_bounded(tmp_path: Path) -> None:
    for index in range(12):
        (tmp_path / f"f{index:02}.dat").write_bytes(b"x")
    collected = collect(tmp_path, {}, BASE, 3, max_files=5)
    assert [f["path"] for f in collected.files] == [f"f{index:02}.dat" for index in range(5)]
    assert collected.omitted == 7
