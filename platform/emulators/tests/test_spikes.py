"""Spike rasters a browser can plot (frontends/spikes.py): the document and its bounds, a failure
that must not stop the script, every way PyNN writes a neo file in a user's script, and the two
example scripts run as whole jobs (a real job queue, the sandbox, the outputs listed)."""

from __future__ import annotations

import json
import os
import pickle
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import neo  # type: ignore[import-untyped]
import nmpi
import numpy as np
import pytest
import quantities as pq  # type: ignore[import-untyped]
from emulator_testkit import RunScript, clear_queue, make_config, submit
from nmpi_emulator.frontends import spikes
from nmpi_emulator.queue import QueueClient
from nmpi_emulator.runner import run_job

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def block_of(*segments: list[Any], name: str = "cells") -> Any:
    block = neo.Block(name=name)
    for trains in segments:
        segment = neo.Segment()
        segment.spiketrains = trains
        block.segments.append(segment)
    return block


def train(times: Any, t_stop: float = 1000.0, units: str = "ms", **annotations: Any) -> Any:
    return neo.SpikeTrain(times, t_stop=t_stop, units=units, **annotations)


def test_document_in_ms_rounded_grouped_by_population_last_segment() -> None:
    first_run = [train([1.0], source_population="exc")]
    last_run = [
        train([0.0012345, 0.5], t_stop=2.0, units="s", source_population="exc"),
        train([], t_stop=2.0, units="s", source_population="exc"),
        train([3.14159], t_stop=2000.0, source_population="inh"),
    ]
    document = spikes.raster(block_of(first_run, [], last_run, [], name="all"))
    assert document == {
        "format": "nmpi-spikes/1",
        "label": "all",
        "t_stop": 2000.0,
        "populations": [
            {"label": "exc", "spiketrains": [[1.23, 500.0], []]},
            {"label": "inh", "spiketrains": [[3.14]]},
        ],
        "truncated": False,
    }
    # Without source_population (neo written by hand): one population, the block's label.
    unlabelled = spikes.raster(block_of([train([2.0]), train([1.0, 3.0])]))
    assert unlabelled is not None
    assert unlabelled["populations"] == [{"label": "cells", "spiketrains": [[2.0], [1.0, 3.0]]}]
    # No spike trains (only signals recorded, or nothing): no document.
    assert spikes.raster(block_of([], [])) is None
    assert spikes.raster(neo.Block()) is None


def test_bounds_keep_the_first_trains_and_the_earliest_spikes() -> None:
    rng = np.random.default_rng(7)
    times = [np.sort(rng.uniform(0.0, 100.0, size=20)) for _ in range(6)]
    block = block_of([train(t) for t in times])

    document = spikes.raster(block, max_spikes=50, max_spiketrains=4)
    assert document is not None
    assert document["truncated"] is True
    kept = document["populations"][0]["spiketrains"]
    assert len(kept) == 4
    earliest = np.sort(np.concatenate(times[:4]))[:50]
    assert sorted(t for spikes_ in kept for t in spikes_) == np.round(earliest, 2).tolist()
    for spikes_, original in zip(kept, times[:4], strict=True):
        assert spikes_ == np.round(original[original <= earliest[-1]], 2).tolist()

    # Exactly at the bounds is not truncated; one more train or spike is.
    assert spikes.raster(block, max_spikes=120, max_spiketrains=6)["truncated"] is False  # type: ignore[index]
    assert spikes.raster(block, max_spikes=119, max_spiketrains=6)["truncated"] is True  # type: ignore[index]
    assert spikes.raster(block, max_spikes=120, max_spiketrains=5)["truncated"] is True  # type: ignore[index]


def test_default_bounds_200000_spikes_10000_trains() -> None:
    assert (spikes.MAX_SPIKES, spikes.MAX_SPIKETRAINS) == (200_000, 10_000)
    # 10,001 cells of 25 spikes (one SpikeTrain object repeated: building 10,001 is slow).
    one = train(np.arange(1.0, 26.0))
    document = spikes.raster(block_of([one] * 10_001))
    assert document is not None
    assert document["truncated"] is True
    kept = document["populations"][0]["spiketrains"]
    assert len(kept) == 10_000
    assert sum(len(t) for t in kept) == 200_000  # 20 times x 10,000 cells: spikes before 21 ms
    assert kept[0] == [float(t) for t in range(1, 21)]


def test_write_beside_is_compact_and_a_failure_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    block = block_of([train([1.0, 2.5])])
    written = spikes.write_beside(tmp_path / "data.pkl", block)
    assert written == tmp_path / "data.pkl.spikes.json"
    text = written.read_text()
    assert " " not in text
    assert json.loads(text)["populations"][0]["spiketrains"] == [[1.0, 2.5]]
    assert [p.name for p in tmp_path.iterdir()] == ["data.pkl.spikes.json"]  # no temporary left

    (tmp_path / "blocked.pkl.spikes.json").mkdir()
    assert spikes.write_beside(tmp_path / "blocked.pkl", block) is None
    assert spikes.write_beside(tmp_path / "missing" / "x.pkl", block) is None
    broken = SimpleNamespace(segments=[SimpleNamespace(spiketrains=[object()])])
    assert spikes.write_beside(tmp_path / "broken.pkl", broken) is None
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith("nmpi-emulator: spike raster ") for line in lines)
    assert "blocked.pkl.spikes.json not written: IsADirectoryError" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocked.pkl.spikes.json",
        "data.pkl.spikes.json",
    ]


# Every way a script writes recorded data through PyNN; the raster never stops the script.
WRITERS = """
import os
import neo
import pyNN.spiNNaker as sim

sim.setup(timestep=1.0)
a = sim.Population(10, sim.IF_curr_exp(i_offset=1.0), label="a")
b = sim.Population(5, sim.IF_curr_exp(i_offset=0.8), label="b")
a.record(["spikes", "v"])
b.record("spikes", to_file="b_at_end.pkl")
sim.run(100.0)
a.write_data("a.pkl")
a.write_data("a_v.pkl", variables="v")
a[2:5].write_data(neo.io.PickleIO("view.pkl"), "spikes")
(a + b).write_data("both.pkl", "spikes")
os.mkdir("blocked.pkl.spikes.json")
a.write_data("blocked.pkl", "spikes")
print("went on", flush=True)
sim.end()
"""


def _counts(path: Path) -> list[int]:
    with path.open("rb") as f:
        block = pickle.load(f)
    return [len(t) for t in block.segments[-1].spiketrains]


def test_every_pynn_writer_leaves_a_raster_beside_its_file(run_script: RunScript) -> None:
    result = run_script(WRITERS)
    assert result.returncode == 0, result.stderr
    assert "went on" in result.stdout
    folder = result.workdir

    def raster(name: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((folder / f"{name}.spikes.json").read_text())
        return document

    a = raster("a.pkl")
    assert a["label"] == "a"
    assert [p["label"] for p in a["populations"]] == ["a"]
    assert [len(t) for t in a["populations"][0]["spiketrains"]] == _counts(folder / "a.pkl")
    assert sum(_counts(folder / "a.pkl")) > 0
    assert a["t_stop"] == 100.0
    assert not (folder / "a_v.pkl.spikes.json").exists()  # no spike trains in it
    view = raster("view.pkl")
    assert [len(t) for t in view["populations"][0]["spiketrains"]] == _counts(folder / "view.pkl")
    assert len(view["populations"][0]["spiketrains"]) == 3
    both = raster("both.pkl")
    assert [(p["label"], len(p["spiketrains"])) for p in both["populations"]] == [
        ("a", 10),
        ("b", 5),
    ]
    at_end = raster("b_at_end.pkl")  # record(to_file=...), written by end()
    assert [len(t) for t in at_end["populations"][0]["spiketrains"]] == _counts(
        folder / "b_at_end.pkl"
    )
    # Readable as the script's own files are (the outputs server reads through the group).
    mode = stat.S_IMODE((folder / "a.pkl.spikes.json").stat().st_mode)
    assert mode == stat.S_IMODE((folder / "a.pkl").stat().st_mode)
    # The raster that could not be written: one line in the log, the neo file written.
    assert (folder / "blocked.pkl").stat().st_size > 0
    complaints = [line for line in result.stderr.splitlines() if "spike raster" in line]
    assert len(complaints) == 1, result.stderr
    assert "blocked.pkl.spikes.json not written: IsADirectoryError" in complaints[0]
    assert not [p for p in os.listdir(folder) if p.endswith(".tmp")]


@pytest.mark.parametrize(
    ("platform", "example", "rasters"),
    [
        (
            "SpiNNaker",
            "spinnaker_network.py",
            {
                "results/excitatory.pkl": ("excitatory", 80),
                "results/inhibitory.pkl": ("inhibitory", 20),
            },
        ),
        ("BrainScaleS-2", "brainscales2_network.py", {"results/spikes.pkl": (None, 64)}),
    ],
)
def test_example_job_publishes_spike_rasters(
    platform: str,
    example: str,
    rasters: dict[str, tuple[str | None, int]],
    server: str,
    new_provider: Callable[[list[str]], str],
    new_user: Callable[..., Any],
    client_factory: Callable[[Any], nmpi.Client],
    tmp_path: Path,
) -> None:
    account = new_user()
    client = client_factory(account)
    key = new_provider([platform])
    clear_queue(server, key, platform)
    with QueueClient(server, key, timeout=10) as site:
        job_id = submit((account, client), (EXAMPLES / example).read_text(), platform=platform)
        claimed = site.next_job(platform)
        assert claimed is not None
        assert claimed.id == job_id
        config = make_config(tmp_path / "work", platform=platform)
        assert run_job(site, claimed, config, threading.Event()) == "finished"

    job = client.get_job(job_id, with_log=True)
    assert job["status"] == "finished", job["log"]
    assert "spike raster" not in job["log"]
    files = {f["path"]: f for f in job["output_data"]["files"]}
    folder = tmp_path / "work" / str(job_id)
    for neo_file, (label, cells) in rasters.items():
        listed = files[f"{neo_file}.spikes.json"]
        assert listed["content_type"] == "application/json"
        assert listed["url"].endswith(f"/{job_id}/{neo_file}.spikes.json")
        document = json.loads((folder / f"{neo_file}.spikes.json").read_text())
        with (folder / neo_file).open("rb") as f:
            trains = pickle.load(f).segments[0].spiketrains
        assert document["format"] == "nmpi-spikes/1"
        assert document["truncated"] is False
        assert document["t_stop"] == float(trains[0].t_stop.rescale(pq.ms).magnitude)
        [population] = document["populations"]
        assert (
            population["label"]
            == document["label"]
            == (label or trains[0].annotations["source_population"])
        )
        assert len(population["spiketrains"]) == cells == len(trains)
        assert [len(t) for t in population["spiketrains"]] == [len(t) for t in trains]
        assert sum(len(t) for t in trains) > 0
        for raster_times, original in zip(population["spiketrains"], trains, strict=True):
            assert raster_times == pytest.approx(original.rescale(pq.ms).magnitude, abs=0.005)
