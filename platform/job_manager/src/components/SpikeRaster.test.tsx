import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/react";
import type { SpikeFile } from "../api/types";
import { rasterLabel, rasterSummary, SpikeRaster } from "./SpikeRaster";
import type { RecordedCall } from "../test/setup";

const SAMPLE: SpikeFile = {
  format: "nmpi-spikes/1",
  t_stop: 100,
  populations: [
    { label: "excitatory", spiketrains: [[1, 20.5, 40], [], [99.9]] },
    { label: "inhibitory", spiketrains: [[5, 55]] },
  ],
  truncated: false,
};

function calls(canvas: HTMLElement): RecordedCall[] {
  return (canvas as unknown as { __ctx: { calls: RecordedCall[] } }).__ctx.calls;
}

describe("SpikeRaster", () => {
  it("summarises the file", () => {
    expect(rasterSummary(SAMPLE)).toEqual({ populations: 2, neurons: 4, spikes: 6, tStop: 100, truncated: false });
  });

  it("is an image with an accessible summary", () => {
    render(<SpikeRaster data={SAMPLE} />);
    const canvas = screen.getByRole("img");
    expect(canvas.tagName).toBe("CANVAS");
    const label = canvas.getAttribute("aria-label")!;
    expect(label).toContain("2 populations");
    expect(label).toContain("4 neurons and 6 spikes over 100 ms");
    expect(label).toContain("excitatory: 3 neurons, 4 spikes");
    expect(label).toContain("inhibitory: 1 neurons, 2 spikes");
  });

  it("draws every spike, in one colour per population, with axes and a legend", () => {
    render(<SpikeRaster data={SAMPLE} />);
    const recorded = calls(screen.getByRole("img"));
    const fills: string[] = [];
    let spikeRects = 0;
    let colour = "";
    for (const call of recorded) {
      if (call.name === "set:fillStyle") colour = call.args[0] as string;
      // Spike ticks are 1.5 px wide.
      if (call.name === "fillRect" && call.args[2] === 1.5) {
        spikeRects += 1;
        fills.push(colour);
      }
    }
    expect(spikeRects).toBe(6);
    expect(new Set(fills.slice(0, 4)).size).toBe(1);
    expect(fills[4]).not.toBe(fills[0]);
    const texts = recorded.filter((c) => c.name === "fillText").map((c) => c.args[0]);
    expect(texts).toContain("Time (ms)");
    expect(texts).toContain("Neuron index");
    expect(texts).toContain("excitatory");
    expect(texts).toContain("inhibitory");
  });

  it("says when the file was truncated", () => {
    render(<SpikeRaster data={{ ...SAMPLE, truncated: true }} />);
    expect(rasterLabel({ ...SAMPLE, truncated: true })).toContain("truncated");
    expect(screen.getByText(/Truncated/)).toBeInTheDocument();
  });
});
