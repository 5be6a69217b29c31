import { describe, expect, it, vi } from "vitest";
import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import NewJob from "./NewJob";
import type { Project } from "../api/types";
import { jsonResponse, mockFetch, renderAt } from "../test/utils";

// CodeMirror is tested in the browser; here a textarea stands in for it.
vi.mock("../components/CodeEditor", () => ({
  default: ({ value, onChange, label }: { value: string; onChange: (v: string) => void; label: string }) => (
    <textarea aria-label={label} value={value} onChange={(e) => onChange(e.target.value)} />
  ),
}));

function project(platform: string, limit: number, usage: number): Project {
  return {
    id: "p1",
    context: "p1",
    resource_uri: "/projects/p1",
    collab: "lab",
    owner: "alice",
    title: "Test",
    abstract: "",
    description: "",
    status: "accepted",
    quotas: [{ id: 1, resource_uri: "/projects/p1/quotas/1", project: "/projects/p1", platform, units: "core-hours", limit, usage }],
  };
}

describe("New job: quota", () => {
  it("refuses to submit when the collab's quota is used up", async () => {
    const calls = mockFetch(() => jsonResponse([project("SpiNNaker", 10, 10)]));
    renderAt(<NewJob />, { path: "/collabs/:collab/jobs/new", route: "/collabs/lab/jobs/new" });
    expect(await screen.findByText(/has no SpiNNaker quota left/)).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Submit job" })).toBeDisabled();
    const query = new URL(calls[0].url, "http://x").searchParams;
    expect(query.get("collab")).toBe("lab");
    expect(query.get("status")).toBe("accepted");
  });

  it("shows what is left and submits, with the CSRF header", async () => {
    const calls = mockFetch((url, init) => {
      if (url.startsWith("/projects/")) return jsonResponse([project("SpiNNaker", 10, 2.5)]);
      if (url === "/jobs/" && init.method === "POST") return jsonResponse({ id: 42 }, { status: 201 });
      return jsonResponse({});
    });
    renderAt(<NewJob />, { path: "/collabs/:collab/jobs/new", route: "/collabs/lab/jobs/new" });
    expect(await screen.findByText(/7.5 core-hours/)).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText("Tags"), "demo");
    const submit = screen.getByRole("button", { name: "Submit job" });
    await waitFor(() => expect(submit).toBeEnabled());
    await userEvent.click(submit);
    await waitFor(() => expect(calls.some((c) => c.init.method === "POST")).toBe(true));
    const post = calls.find((c) => c.init.method === "POST")!;
    expect((post.init.headers as Record<string, string>)["X-NMPI-CSRF"]).toBe("1");
    const body = JSON.parse(post.init.body as string);
    expect(body).toMatchObject({ collab: "lab", hardware_platform: "SpiNNaker", command: "run.py {system}", tags: ["demo"] });
    expect(body.code).toContain("import");
  });

  it("does not refuse a platform without any quota yet (a test quota comes with the first job)", async () => {
    mockFetch(() => jsonResponse([project("BrainScaleS-2", 1, 1)]));
    renderAt(<NewJob />, { path: "/collabs/:collab/jobs/new", route: "/collabs/lab/jobs/new" });
    expect(await screen.findByText(/has no quota for SpiNNaker yet/)).toBeInTheDocument();
    await waitFor(() => expect(screen.getByRole("button", { name: "Submit job" })).toBeEnabled());
  });
});
