import { useEffect, useRef, useState } from "react";
import Box from "@mui/material/Box";
import type { SpikeFile } from "../api/types";

// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

export interface RasterSummary {
  populations: number;
  neurons: number;
  spikes: number;
  tStop: number;
  truncated: boolean;
}

export function rasterSummary(data: SpikeFile): RasterSummary {
  let neurons = 0;
  let spikes = 0;
  for (const population of data.populations) {
    neurons += population.spiketrains.length;
    for (const train of population.spiketrains) spikes += train.length;
  }
  return { populations: data.populations.length, neurons, spikes, tStop: data.t_stop, truncated: Boolean(data.truncated) };
}

export function rasterLabel(data: SpikeFile): string {
  const s = rasterSummary(data);
  const parts = data.populations.map((p) => {
    const count = p.spiketrains.reduce((n, t) => n + t.length, 0);
    return `${p.label || "unnamed"}: ${p.spiketrains.length} neurons, ${count} spikes`;
  });
  return (
    `Spike raster of ${s.populations} population${s.populations === 1 ? "" : "s"}, ` +
    `${s.neurons} neurons and ${s.spikes} spikes over ${s.tStop} ms` +
    (parts.length ? ` (${parts.join("; ")})` : "") +
    (s.truncated ? ". The file was truncated: not every spike is shown." : ".")
  );
}

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

/** Draws the raster: x time (ms), y neuron index (populations stacked), one colour each. */
export function drawRaster(ctx: CanvasRenderingContext2D, data: SpikeFile, width: number, height: number) {
  const summary = rasterSummary(data);
  const legendHeight = 22 * Math.ceil(Math.max(1, data.populations.length) / Math.max(1, Math.floor((width - 60) / 160)));
  const margin = { left: 56, right: 12, top: 10 + legendHeight, bottom: 44 };
  const plotW = Math.max(10, width - margin.left - margin.right);
  const plotH = Math.max(10, height - margin.top - margin.bottom);
  const tStop = summary.tStop > 0 ? summary.tStop : 1;
  const neurons = Math.max(1, summary.neurons);
  const x = (t: number) => margin.left + (t / tStop) * plotW;
  const rowH = plotH / neurons;
  const y = (i: number) => margin.top + plotH - (i + 0.5) * rowH;

  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);

  // Spikes.
  const tick = Math.max(1, Math.min(rowH * 0.8, 8));
  let base = 0;
  data.populations.forEach((population, p) => {
    ctx.fillStyle = PALETTE[p % PALETTE.length];
    population.spiketrains.forEach((train, i) => {
      const cy = y(base + i);
      for (const t of train) {
        if (t < 0 || t > tStop) continue;
        ctx.fillRect(x(t) - 0.5, cy - tick / 2, 1.5, tick);
      }
    });
    base += population.spiketrains.length;
  });

  // Axes.
  ctx.strokeStyle = "#333333";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(margin.left, margin.top);
  ctx.lineTo(margin.left, margin.top + plotH);
  ctx.lineTo(margin.left + plotW, margin.top + plotH);
  ctx.stroke();

  ctx.fillStyle = "#222222";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const xStep = niceStep(tStop, Math.max(2, Math.floor(plotW / 80)));
  for (let t = 0; t <= tStop + 1e-9; t += xStep) {
    ctx.beginPath();
    ctx.moveTo(x(t), margin.top + plotH);
    ctx.lineTo(x(t), margin.top + plotH + 4);
    ctx.stroke();
    ctx.fillText(String(Number(t.toPrecision(6))), x(t), margin.top + plotH + 6);
  }
  ctx.fillText("Time (ms)", margin.left + plotW / 2, margin.top + plotH + 24);

  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const yStep = Math.max(1, niceStep(neurons, Math.max(2, Math.floor(plotH / 40))));
  for (let i = 0; i < neurons; i += yStep) {
    ctx.fillText(String(i), margin.left - 6, y(i));
  }
  ctx.save();
  ctx.translate(14, margin.top + plotH / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText("Neuron index", 0, 0);
  ctx.restore();

  // Legend.
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let lx = margin.left;
  let ly = 12;
  data.populations.forEach((population, p) => {
    const text = population.label || `population ${p + 1}`;
    const w = 24 + Math.min(136, ctx.measureText(text).width + 8);
    if (lx + w > width && lx > margin.left) {
      lx = margin.left;
      ly += 22;
    }
    ctx.fillStyle = PALETTE[p % PALETTE.length];
    ctx.fillRect(lx, ly - 6, 14, 12);
    ctx.fillStyle = "#222222";
    ctx.fillText(text, lx + 18, ly);
    lx += w;
  });
}

export function SpikeRaster({ data, height = 320 }: { data: SpikeFile; height?: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);

  useEffect(() => {
    const element = box.current;
    if (!element || typeof ResizeObserver === "undefined") return undefined;
    const observer = new ResizeObserver((entries) => {
      const w = Math.floor(entries[0]?.contentRect.width ?? 0);
      if (w > 0) setWidth(w);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    const element = canvas.current;
    const ctx = element?.getContext("2d");
    if (!element || !ctx) return;
    const ratio = window.devicePixelRatio || 1;
    element.width = Math.floor(width * ratio);
    element.height = Math.floor(height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    drawRaster(ctx, data, width, height);
  }, [data, width, height]);

  const summary = rasterSummary(data);
  return (
    <Box ref={box} sx={{ width: "100%" }}>
      <canvas ref={canvas} role="img" aria-label={rasterLabel(data)} style={{ width: `${width}px`, height: `${height}px`, display: "block", maxWidth: "100%" }}>
        {rasterLabel(data)}
      </canvas>
      {summary.truncated && (
        <Box component="p" sx={{ color: "warning.dark", m: 0, mt: 0.5, fontSize: 14 }}>
          Truncated: the file holds only part of the spikes.
        </Box>
      )}
    </Box>
  );
}
