import { describe, expect, it, vi } from "vitest";
import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import JobDetail from "./JobDetail";
import { job } from "../test/fixtures";
import { jsonResponse, mockFetch, renderAt } from "../test/utils";

describe("Job detail", () => {
  it("follows the log every 2 s while running, and stops once finished", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      let status = "running";
      let log = "starting\n";
      const calls = mockFetch((url) => {
        if (url === "/jobs/7/log") return new Response(log, { headers: { "Content-Type": "text/plain" } });
        return jsonResponse(job(7, { status: status as "running", timestamp_completion: null, comments: [], resource_usage: { value: 0.25, units: "core-hours" }, provenance: { seed: 3 } }));
      });
      renderAt(<JobDetail />, { path: "/collabs/:collab/jobs/:id", route: "/collabs/lab/jobs/7" });
      expect(await screen.findByText("starting")).toBeInTheDocument();
      expect(calls[0].url).toBe("/jobs/7?with_comments=true");
      expect(screen.getByText("0.25 core-hours")).toBeInTheDocument();
      log = "starting\nstep 1\n";
      status = "finished";
      await vi.advanceTimersByTimeAsync(2000);
      await waitFor(() => expect(screen.getByLabelText("Job log")).toHaveTextContent("step 1"));
      await waitFor(() => expect(screen.getByText("finished")).toBeInTheDocument());
      const count = calls.length;
      await vi.advanceTimersByTimeAsync(6000);
      expect(calls.length).toBe(count);
    } finally {
      vi.useRealTimers();
    }
  });

  it("removes a job only after confirmation, with the CSRF header", async () => {
    const calls = mockFetch((url, init) => {
      if (init.method === "DELETE") return new Response(null, { status: 204 });
      if (url === "/jobs/7/log") return new Response("");
      return jsonResponse(job(7, { comments: [] }));
    });
    renderAt(<JobDetail />, { path: "/collabs/:collab/jobs/:id", route: "/collabs/lab/jobs/7" });
    await userEvent.click(await screen.findByRole("button", { name: "Remove" }));
    expect(screen.getByRole("dialog", { name: "Remove job 7?" })).toBeInTheDocument();
    expect(calls.some((c) => c.init.method === "DELETE")).toBe(false);
    const buttons = screen.getAllByRole("button", { name: "Remove" });
    await userEvent.click(buttons[buttons.length - 1]);
    await waitFor(() => expect(calls.some((c) => c.init.method === "DELETE")).toBe(true));
    const del = calls.find((c) => c.init.method === "DELETE")!;
    expect(del.url).toBe("/jobs/7");
    expect((del.init.headers as Record<string, string>)["X-NMPI-CSRF"]).toBe("1");
  });
});
