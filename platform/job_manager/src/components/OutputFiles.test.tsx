import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { OutputFiles, previewKind } from "./OutputFiles";
import { jsonResponse, mockFetch } from "../test/utils";
import { formatBytes, formatDuration } from "../lib/format";

const SPIKES = {
  format: "nmpi-spikes/1",
  t_stop: 50,
  populations: [{ label: "cells", spiketrains: [[1, 2], [3]] }],
  truncated: false,
};

describe("output files", () => {
  it("knows what it can preview", () => {
    expect(previewKind({ url: "https://site/x/cells.pkl.spikes.json" })).toBe("spikes");
    expect(previewKind({ url: "https://site/x/plot.png" })).toBe("image");
    expect(previewKind({ url: "https://site/x/out", content_type: "text/plain" })).toBe("text");
    expect(previewKind({ url: "https://site/x/cells.pkl" })).toBeNull();
  });

  it("lists files with human sizes and download links, and draws spike rasters", async () => {
    mockFetch((url) => (url.endsWith(".spikes.json") ? jsonResponse(SPIKES) : new Response("hello world")));
    render(
      <OutputFiles
        files={[
          { url: "https://site/job/cells.pkl", path: "cells.pkl", size: 2_500_000 },
          { url: "https://site/job/cells.pkl.spikes.json", path: "cells.pkl.spikes.json", size: 900 },
          { url: "https://site/job/stdout.txt", path: "stdout.txt", size: 11 },
        ]}
      />,
    );
    const link = screen.getByRole("link", { name: "cells.pkl" });
    expect(link).toHaveAttribute("href", "https://site/job/cells.pkl");
    expect(link).toHaveAttribute("download", "cells.pkl");
    expect(screen.getByText("2.4 MB")).toBeInTheDocument();
    expect(screen.getByText("900 B")).toBeInTheDocument();
    // The raster opens by itself.
    expect(await screen.findByRole("img", { name: /1 population, 2 neurons and 3 spikes over 50 ms/ })).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Show preview of stdout.txt" }));
    expect(await screen.findByText("hello world")).toBeInTheDocument();
  });
});

describe("format", () => {
  it("formats sizes and durations", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1536)).toBe("1.5 kB");
    expect(formatBytes(null)).toBe("—");
    expect(formatDuration(5_000)).toBe("5 s");
    expect(formatDuration(3_700_000)).toBe("1 h 1 min");
  });
});
