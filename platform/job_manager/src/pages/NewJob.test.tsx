import { describe, expect, it, vi } from "vitest";
import { act, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import NewJob from "./NewJob";
import type { Project } from "../api/types";
import { jsonResponse, mockFetch, mockXhr, renderAt } from "../test/utils";
import { codeArchive, SHA } from "../test/fixtures";
import { formatBytes } from "../lib/format";

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

describe("New job: archive upload", () => {
  const renderNewJob = async () => {
    renderAt(<NewJob />, { path: "/collabs/:collab/jobs/new", route: "/collabs/lab/jobs/new" });
    await userEvent.click(screen.getByRole("tab", { name: "Archive (zip/tar)" }));
  };
  const uploadedLine = () => screen.queryAllByRole("status").find((el) => el.textContent?.startsWith("Uploaded "));
  const projectsAndJobs = () =>
    mockFetch((url, init) => {
      if (url.startsWith("/projects/")) return jsonResponse([project("SpiNNaker", 10, 2)]);
      if (url === "/jobs/" && init.method === "POST") return jsonResponse({ id: 42 }, { status: 201 });
      return jsonResponse({});
    });

  it("opens the file picker from a named button, reached with the keyboard", async () => {
    projectsAndJobs();
    await renderNewJob();
    const input = screen.getByLabelText("Archive file");
    expect(input).toHaveAttribute("type", "file");
    expect(input).toHaveAttribute("accept", ".zip,.tar,.tar.gz,.tgz,.tar.bz2,.tbz2,.tar.xz,.txz");
    const click = vi.spyOn(input, "click");
    // The next stop after the tab (the input itself is out of the tab order).
    await userEvent.tab();
    expect(screen.getByRole("button", { name: "Upload an archive" })).toHaveFocus();
    await userEvent.keyboard("{Enter}");
    expect(click).toHaveBeenCalledTimes(1);
  });

  it("uploads, shows progress, fills the URL with the absolute archive URL, and submits it as code", async () => {
    const fetched = projectsAndJobs();
    const xhr = mockXhr();
    await renderNewJob();
    const submit = screen.getByRole("button", { name: "Submit job" });
    // A URL given first, then replaced by an upload: no submitting while the upload runs.
    await userEvent.type(screen.getByLabelText("Archive URL"), "https://example.org/old.zip");
    await waitFor(() => expect(submit).toBeEnabled());
    const file = new File(["PK\u0003\u0004 model"], "model.zip", { type: "application/zip" });
    await userEvent.upload(screen.getByLabelText("Archive file"), file);

    expect(xhr).toHaveLength(1);
    expect(new URL(xhr[0].url, "http://x").searchParams.get("collab")).toBe("lab");
    expect(xhr[0].body).toBe(file);
    act(() => xhr[0].progress(6, 12));
    expect(screen.getByRole("progressbar", { name: "Upload progress" })).toHaveAttribute("aria-valuenow", "50");
    expect(submit).toBeDisabled();
    expect(screen.getByRole("button", { name: "Upload an archive" })).toBeDisabled();

    act(() => xhr[0].respond({ status: 201, body: codeArchive({ size: 2048 }) }));
    const url = `${window.location.origin}/code-archives/${SHA}.zip`;
    await waitFor(() => expect(screen.getByLabelText("Archive URL")).toHaveValue(url));
    expect(screen.queryByRole("progressbar", { name: "Upload progress" })).not.toBeInTheDocument();
    const summary = uploadedLine();
    expect(summary).toBeDefined();
    expect(summary).toHaveTextContent("model.zip");
    expect(summary).toHaveTextContent(formatBytes(2048));
    expect(summary).toHaveTextContent(SHA.slice(0, 12));
    expect(summary).not.toHaveTextContent(SHA);

    await waitFor(() => expect(submit).toBeEnabled());
    await userEvent.click(submit);
    await waitFor(() => expect(fetched.some((c) => c.init.method === "POST")).toBe(true));
    const body = JSON.parse(fetched.find((c) => c.init.method === "POST")!.init.body as string);
    expect(body).toMatchObject({ collab: "lab", code: url });
  });

  it("shows the server's reason when it refuses the file", async () => {
    projectsAndJobs();
    mockXhr(() => ({ status: 415, body: { detail: "notes.zip is not a zip, tar, tar.gz, tar.bz2 or tar.xz archive" } }));
    await renderNewJob();
    await userEvent.upload(screen.getByLabelText("Archive file"), new File(["hello"], "notes.zip"));
    expect(await screen.findByRole("alert")).toHaveTextContent("notes.zip is not a zip, tar, tar.gz, tar.bz2 or tar.xz archive");
    expect(screen.getByLabelText("Archive URL")).toHaveValue("");
    expect(uploadedLine()).toBeUndefined();
  });

  it("refuses a file over the size limit without sending it", async () => {
    projectsAndJobs();
    const xhr = mockXhr(() => ({ status: 201, body: codeArchive() }));
    await renderNewJob();
    const big = new File(["x"], "big.tar.gz");
    Object.defineProperty(big, "size", { value: 17 * 1024 * 1024 });
    await userEvent.upload(screen.getByLabelText("Archive file"), big);
    expect(await screen.findByRole("alert")).toHaveTextContent(/"big\.tar\.gz" is 17 MB.*16 MiB/);
    expect(xhr).toHaveLength(0);
  });
});
