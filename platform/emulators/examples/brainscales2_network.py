"""A small network for BrainScaleS-2: spike trains driving 64 adaptive neurons of the chip.

Runs unmodified on the real chip (pynn-brainscales) and on the emulated one: weights are the
chip's 6-bit integers (0-63), neurons are configured in hardware units. It writes the spikes with
neo (results/spikes.pkl) and a raster plot (results/raster.png).
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pynn_brainscales.brainscales2 as pynn

os.makedirs("results", exist_ok=True)
pynn.setup()

rng = np.random.default_rng(1234)
times = [sorted(rng.uniform(1.0, 99.0, size=8).round(1)) for _ in range(16)]
stimulus = pynn.Population(16, pynn.cell_types.SpikeSourceArray(spike_times=times))
neurons = pynn.Population(
    64,
    pynn.cell_types.HXNeuron(
        threshold_v_threshold=650, adaptation_enable=True, adaptation_i_bias_b=200
    ),
)
pynn.Projection(
    stimulus,
    neurons,
    pynn.FixedProbabilityConnector(0.25),
    pynn.standardmodels.synapses.StaticSynapse(weight=20),
    receptor_type="excitatory",
)

neurons.record("spikes")
pynn.run(100.0)  # 100 ms of biological time: 0.1 ms on the chip
neurons.write_data("results/spikes.pkl")
spikes = neurons.get_data("spikes").segments[0].spiketrains
pynn.end()

figure, axes = plt.subplots(figsize=(8, 4))
for index, train in enumerate(spikes):
    axes.plot(train.magnitude, [index] * len(train), "|", color="black", markersize=3)
axes.set(xlabel="time (ms)", ylabel="neuron", title="Adaptive neurons on BrainScaleS-2")
figure.savefig("results/raster.png", dpi=100)
print(f"{sum(len(t) for t in spikes)} spikes from {len(spikes)} neurons")
