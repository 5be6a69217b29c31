import { describe, expect, it, vi } from "vitest";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router-dom";
import type { Job } from "../api/types";
import { job } from "../test/fixtures";
import { JobsTable } from "./JobsTable";
import Jobs from "../pages/Jobs";
import { jsonResponse, mockFetch, renderAt } from "../test/utils";


describe("JobsTable", () => {
  it("renders one row per job with its link, status text, platform, duration and tags", () => {
    render(
      <MemoryRouter>
        <JobsTable
          collab="lab"
          jobs={[job(2, { status: "running", timestamp_completion: null, tags: ["mnist"] }), job(1)]}
          pageNumber={1}
          hasNext
          hasPrevious={false}
          onNext={() => undefined}
          onPrevious={() => undefined}
          now={Date.parse("2024-05-01T10:00:10Z")}
        />
      </MemoryRouter>,
    );
    const rows = screen.getAllByRole("row");
    expect(rows).toHaveLength(3); // header + 2
    const first = within(rows[1]);
    expect(first.getByRole("link", { name: "Job 2" })).toHaveAttribute("href", "/collabs/lab/jobs/2");
    expect(first.getByText("running")).toBeInTheDocument();
    expect(first.getByText("SpiNNaker")).toBeInTheDocument();
    expect(first.getByText("10 s so far")).toBeInTheDocument();
    expect(first.getByText("mnist")).toBeInTheDocument();
    expect(within(rows[2]).getByText("1 min 30 s")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Previous page" })).toBeDisabled();
    expect(screen.getByRole("button", { name: "Next page" })).toBeEnabled();
  });

  it("calls onNext", async () => {
    const onNext = vi.fn();
    render(
      <MemoryRouter>
        <JobsTable collab="lab" jobs={[job(1)]} pageNumber={1} hasNext hasPrevious={false} onNext={onNext} onPrevious={() => undefined} />
      </MemoryRouter>,
    );
    await userEvent.click(screen.getByRole("button", { name: "Next page" }));
    expect(onNext).toHaveBeenCalledOnce();
  });
});

describe("Jobs page", () => {
  it("asks for 100 jobs, follows the Link header to the next page and comes back", async () => {
    const next = "/jobs/?collab=lab&size=100&before_id=101";
    const calls = mockFetch((url) => {
      if (url.startsWith("/tags/")) return jsonResponse(["mnist"]);
      if (url.includes("before_id=101")) return jsonResponse([job(100), job(99)]);
      return jsonResponse([job(102), job(101)], { headers: { Link: `<${next}>; rel="next"` } });
    });
    renderAt(<Jobs />, { path: "/collabs/:collab/jobs", route: "/collabs/lab/jobs" });
    expect(await screen.findByRole("link", { name: "Job 102" })).toBeInTheDocument();
    const first = calls.find((c) => c.url.startsWith("/jobs/"))!;
    const params = new URL(first.url, "http://x").searchParams;
    expect(params.get("size")).toBe("100");
    expect(params.get("collab")).toBe("lab");

    await userEvent.click(screen.getByRole("button", { name: "Next page" }));
    expect(await screen.findByRole("link", { name: "Job 100" })).toBeInTheDocument();
    expect(calls.some((c) => c.url === next)).toBe(true);
    expect(screen.getByText("Page 2")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Next page" })).toBeDisabled();

    await userEvent.click(screen.getByRole("button", { name: "Previous page" }));
    expect(await screen.findByRole("link", { name: "Job 102" })).toBeInTheDocument();
    expect(screen.getByText("Page 1")).toBeInTheDocument();
  });

  it("re-reads the page every 5 s while visible and updates rows in place", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      let status: Job["status"] = "running";
      const calls = mockFetch((url) => {
        if (url.startsWith("/tags/")) return jsonResponse([]);
        return jsonResponse([job(7, { status, timestamp_completion: null })]);
      });
      renderAt(<Jobs />, { path: "/collabs/:collab/jobs", route: "/collabs/lab/jobs" });
      const link = await screen.findByRole("link", { name: "Job 7" });
      expect(screen.getByText("running")).toBeInTheDocument();
      status = "finished";
      await vi.advanceTimersByTimeAsync(5000);
      await waitFor(() => expect(screen.getByText("finished")).toBeInTheDocument());
      expect(screen.getByRole("link", { name: "Job 7" })).toBe(link); // the same row, updated
      const jobCalls = calls.filter((c) => c.url.startsWith("/jobs/")).length;
      Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
      await vi.advanceTimersByTimeAsync(15000);
      expect(calls.filter((c) => c.url.startsWith("/jobs/")).length).toBe(jobCalls);
    } finally {
      Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
      vi.useRealTimers();
    }
  });
});
