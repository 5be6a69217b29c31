"""Users' scripts on the front-ends, run as the runner runs them (a fresh Python, the overlay on
PYTHONPATH, a report file): what they import, what they are refused, how long they take, what
they are charged. Each script imports NEST (~1.5 s), so there are few of them.
"""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest
from emulator_testkit import RunScript
from nmpi_emulator.frontends import report

# The seed example: 20 Poisson sources driving 80 excitatory + 20 inhibitory current-based
# cells (one population of 100, as PyNN examples do), positive inhibitory weights as written
# for sPyNNaker, spikes written with neo and plotted.
SPINNAKER_NETWORK = """
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from neo.io import PickleIO

import pyNN.spiNNaker as sim

print("module", sim is sys.modules["nmpi_emulator.frontends.spinnaker"])
sim.setup(timestep=1.0, time_scale_factor=1, n_boards_required=1)
sources = sim.Population(20, sim.SpikeSourcePoisson(rate=20.0), label="sources",
                         additional_parameters={"seed": 42})
cells = sim.Population(100, sim.IF_curr_exp(), label="cells")
exc, inh = cells[:80], cells[80:]
conn = sim.FixedProbabilityConnector(0.1)
sim.Projection(sources, cells, conn, sim.StaticSynapse(weight=2.0, delay=1.0),
               receptor_type="excitatory")
sim.Projection(exc, cells, conn, sim.StaticSynapse(weight=0.5, delay=1.0),
               receptor_type="excitatory")
inhibition = sim.Projection(inh, exc, conn, sim.StaticSynapse(weight=0.5, delay=1.0),
                            receptor_type="inhibitory")
cells.record("spikes")
start = time.monotonic()
sim.run(1000.0)
print("run_s", time.monotonic() - start)
print("inhibitory_weights", sorted({w for *_, w in inhibition.get("weight", format="list")}))
block = cells.get_data("spikes")
PickleIO("spikes.pkl").write_block(block)
trains = block.segments[0].spiketrains
fig, ax = plt.subplots()
ax.eventplot([t.magnitude for t in trains])
fig.savefig("raster.png")
sim.end()
"""


def _value(stdout: str, key: str) -> str:
    return next(line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith(key))


def test_spinnaker_network_runs_in_real_time_and_is_charged(run_script: RunScript) -> None:
    result = run_script(SPINNAKER_NETWORK)
    assert result.returncode == 0, result.stderr
    assert _value(result.stdout, "module ") == "True"
    assert float(_value(result.stdout, "run_s ")) >= 1.0
    # sPyNNaker's positive inhibitory weight reaches NEST negated.
    assert _value(result.stdout, "inhibitory_weights ") == "[-0.5]"
    with (result.workdir / "spikes.pkl").open("rb") as f:
        block = pickle.load(f)
    trains = block.segments[0].spiketrains
    assert len(trains) == 100
    assert sum(len(t) for t in trains) > 0
    assert (result.workdir / "raster.png").stat().st_size > 0
    assert "nest-config" not in result.stderr  # the emulation's internals stay out of the log

    report = result.report
    assert report is not None
    assert report["platform"] == "SpiNNaker"
    assert report["resource_usage"]["units"] == "core-hours"
    assert report["resource_usage"]["value"] == pytest.approx(2 * 1.0 / 3600)
    prov = report["provenance"]
    assert prov["cores"] == 2  # 100 cells on one core, 20 sources on another
    assert (prov["neurons"], prov["spike_sources"], prov["boards"]) == (100, 20, 1)
    assert (prov["seed"], prov["timestep_ms"], prov["biological_time_ms"]) == (1234, 1.0, 1000.0)
    assert prov["wall_time_s"] >= 1.0
    assert set(prov["simulator"]) >= {"PyNN", "NEST"}


def test_spinnaker_refusals(run_script: RunScript) -> None:
    # One script for two refusals (each script start imports NEST): the first is caught and
    # printed, the second ends the script as it would end a job.
    script = """
import pyNN.spiNNaker as sim
try:
    sim.setup(timestep=0.5)
except ValueError as err:
    print("refused:", err)
sim.setup(timestep=0.1)
sim.Population(10, sim.HH_cond_exp())
sim.run(10.0)
print("finished")
"""
    result = run_script(script)
    assert result.returncode != 0
    assert "finished" not in result.stdout
    assert (
        "refused: SpiNNaker supports a timestep of 1 or 0.1 ms only "
        "(the script asked for 0.5 ms)" in result.stdout
    )
    assert (
        "HardwareConstraintError: SpiNNaker does not support cell type HH_cond_exp "
        "(supported: IF_cond_exp, IF_curr_alpha, " in result.stderr
    )
    # The report is still written at exit, with nothing run and nothing charged.
    assert result.report is not None
    assert result.report["resource_usage"]["value"] == 0


BRAINSCALES2_NETWORK = """
import time

import pynn_brainscales.brainscales2 as pynn
from pynn_brainscales import brainscales2

assert brainscales2 is pynn
pynn.setup()
stimulus = pynn.Population(5, pynn.cell_types.SpikeSourceArray(spike_times=[10.0, 500.0]))
neurons = pynn.Population(4, pynn.cell_types.HXNeuron(
    leak_v_leak=550, threshold_v_threshold=700, refractory_period_refractory_time=95))
pynn.Projection(stimulus, neurons, pynn.AllToAllConnector(),
                pynn.standardmodels.synapses.StaticSynapse(weight=WEIGHT))
neurons.record("spikes")
start = time.monotonic()
pynn.run(5000.0)
print("run_s", time.monotonic() - start)
print("spikes", sum(len(t) for t in neurons.get_data("spikes").segments[0].spiketrains))
pynn.end()
"""


def test_brainscales2_network_runs_accelerated_and_is_charged(run_script: RunScript) -> None:
    result = run_script(BRAINSCALES2_NETWORK.replace("WEIGHT", "63"))
    assert result.returncode == 0, result.stderr
    # 5 s of biology take 5 ms on the chip, plus 0.5 s of overhead per run(): far less than
    # the biological time (the bound leaves room for a busy machine).
    assert 0.505 <= float(_value(result.stdout, "run_s ")) < 2.5
    assert int(_value(result.stdout, "spikes ")) > 0
    report = result.report
    assert report is not None
    assert report["platform"] == "BrainScaleS-2"
    assert report["resource_usage"]["units"] == "chip-hours"
    assert report["resource_usage"]["value"] == pytest.approx(0.505 / 3600)
    assert (report["provenance"]["neurons"], report["provenance"]["chips"]) == (4, 1)


def test_brainscales2_refusals(run_script: RunScript) -> None:
    script = """
import pynn_brainscales.brainscales2 as pynn
pynn.setup()
sources = pynn.Population(2, pynn.cells.SpikeSourceArray(spike_times=[1.0]))
neurons = pynn.Population(500, pynn.cells.HXNeuron())
for attempt in (
    lambda: pynn.Projection(sources, neurons, pynn.AllToAllConnector(),
                            pynn.StaticSynapse(weight=64), label="too-strong"),
    lambda: pynn.Population(1, pynn.cells.HXNeuron(leak_v_leek=500)),
):
    try:
        attempt()
    except ValueError as err:
        print("refused:", err)
pynn.Population(13, pynn.cells.HXNeuron())
pynn.run(10.0)
print("finished")
"""
    result = run_script(script)
    assert result.returncode != 0
    assert "finished" not in result.stdout
    refusals = [line for line in result.stdout.splitlines() if line.startswith("refused: ")]
    assert refusals[0] == (
        "refused: BrainScaleS-2 weights are integers from 0 to 63 "
        "(projection too-strong asks for weight 64)"
    )
    assert refusals[1].startswith(
        "refused: HXNeuron has no parameter leak_v_leek (emulated parameters: "
    )
    assert (
        "HardwareConstraintError: BrainScaleS-2 has 512 neurons on its one chip "
        "(the script asks for 513 HXNeuron neurons)" in result.stderr
    )


def test_script_runs_without_the_runner(run_script: RunScript) -> None:
    # A user trying the script on a laptop: no report asked for, none written, no seed given.
    script = textwrap.dedent(
        """
        import pyNN.spiNNaker as sim
        sim.setup()
        cells = sim.Population(2, sim.IF_curr_exp(i_offset=1.0))
        cells.record("spikes")
        sim.run(100.0)
        print("spikes", sum(len(t) for t in cells.get_data().segments[0].spiketrains))
        sim.end()
        """
    )
    result = run_script(script, report=False, seed=None)
    assert result.returncode == 0, result.stderr
    assert int(_value(result.stdout, "spikes ")) > 0
    assert result.report is None
    assert sorted(p.name for p in result.workdir.iterdir()) == ["run.py"]


def test_report_file_is_written_whole_and_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.json"
    monkeypatch.delenv(report.REPORT_ENV, raising=False)
    assert report.write_report("SpiNNaker", 1.0, "core-hours", {"seed": 1}) is None
    monkeypatch.setenv(report.REPORT_ENV, str(target))
    assert report.write_report("SpiNNaker", 0.5, "core-hours", {"seed": 7}) == target
    written = json.loads(target.read_text())
    assert written["resource_usage"] == {"value": 0.5, "units": "core-hours"}
    assert written["provenance"]["seed"] == 7
    assert "PyNN" in written["provenance"]["simulator"]
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


@pytest.mark.parametrize(("given", "seed"), [("1234", 1234), ("0", 1), (str(2**31 - 1), 2**31 - 1)])
def test_job_seed_is_a_valid_nest_seed(
    monkeypatch: pytest.MonkeyPatch, given: str, seed: int
) -> None:
    monkeypatch.setenv(report.SEED_ENV, given)
    assert report.job_seed() == seed
    monkeypatch.delenv(report.SEED_ENV)
    assert 1 <= report.job_seed() <= 2**31 - 1
