"""A balanced network for SpiNNaker: Poisson input driving 80 excitatory and 20 inhibitory cells.

Runs unmodified on the real machine (sPyNNaker) and on the emulated one. Submit it with the
nmpi client (README.md, "Run a job on the emulated hardware"); it writes the spikes and
membrane traces with neo (results/*.pkl) and a raster plot (results/raster.png).
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyNN.spiNNaker as p  # noqa: N813  (as users write it)

os.makedirs("results", exist_ok=True)
p.setup(timestep=1.0)
p.set_number_of_neurons_per_core(p.IF_curr_exp, 64)

stimulus = p.Population(20, p.SpikeSourcePoisson(rate=20.0), label="stimulus")
excitatory = p.Population(80, p.IF_curr_exp(tau_m=20.0, v_thresh=-50.0), label="excitatory")
inhibitory = p.Population(20, p.IF_curr_exp(tau_m=20.0, v_thresh=-50.0), label="inhibitory")

connector = p.FixedProbabilityConnector(0.1)
p.Projection(
    stimulus,
    excitatory,
    connector,
    p.StaticSynapse(weight=2.0, delay=1.0),
    receptor_type="excitatory",
)
p.Projection(
    stimulus,
    inhibitory,
    connector,
    p.StaticSynapse(weight=2.0, delay=1.0),
    receptor_type="excitatory",
)
p.Projection(
    excitatory,
    excitatory,
    connector,
    p.StaticSynapse(weight=0.5, delay=2.0),
    receptor_type="excitatory",
)
p.Projection(
    excitatory,
    inhibitory,
    connector,
    p.StaticSynapse(weight=0.5, delay=2.0),
    receptor_type="excitatory",
)
# sPyNNaker takes inhibitory weights positive (the receptor type says they inhibit).
p.Projection(
    inhibitory,
    excitatory,
    connector,
    p.StaticSynapse(weight=1.5, delay=1.0),
    receptor_type="inhibitory",
)

excitatory.record(["spikes", "v"])
inhibitory.record("spikes")
p.run(1000.0)

excitatory.write_data("results/excitatory.pkl")
inhibitory.write_data("results/inhibitory.pkl")
spikes = excitatory.get_data("spikes").segments[0].spiketrains
p.end()

figure, axes = plt.subplots(figsize=(8, 4))
for index, train in enumerate(spikes):
    axes.plot(train.magnitude, [index] * len(train), "|", color="black", markersize=3)
axes.set(xlabel="time (ms)", ylabel="excitatory cell", title="Balanced network on SpiNNaker")
figure.savefig("results/raster.png", dpi=100)
print(f"{sum(len(t) for t in spikes)} spikes from {len(spikes)} excitatory cells")
