import { describe, expect, it, vi } from "vitest";
import * as api from "./client";
import { jsonResponse, mockFetch, mockXhr } from "../test/utils";
import { codeArchive as archiveReply, SHA } from "../test/fixtures";

describe("parseLinkNext", () => {
  it("reads rel=next", () => {
    expect(api.parseLinkNext('</jobs/?collab=lab&size=100&before_id=48213>; rel="next"')).toBe(
      "/jobs/?collab=lab&size=100&before_id=48213",
    );
  });
  it("finds next among several links and unquoted rel", () => {
    expect(api.parseLinkNext('</a?x=1,2>; rel="prev", </b?y=2>; rel=next')).toBe("/b?y=2");
    expect(api.parseLinkNext('</c>; rel="last next"')).toBe("/c");
  });
  it("is null without a next link", () => {
    expect(api.parseLinkNext(null)).toBeNull();
    expect(api.parseLinkNext("")).toBeNull();
    expect(api.parseLinkNext('</a>; rel="prev"')).toBeNull();
  });
});

describe("requests", () => {
  it("sends credentials same-origin on every request, and the CSRF header on writes only", async () => {
    const calls = mockFetch((url, init) =>
      init.method === "DELETE" ? new Response(null, { status: 204 }) : jsonResponse(url.startsWith("/jobs/1/tags") ? ["ab"] : { id: 1 }),
    );
    await api.getJob(1);
    await api.submitJob({ code: "print(1)", collab: "lab", hardware_platform: "SpiNNaker" });
    await api.updateProject("p1", { title: "t" });
    await api.deleteJob(1);
    await api.addTags(1, ["ab"]);
    expect(calls).toHaveLength(5);
    for (const call of calls) expect(call.init.credentials).toBe("same-origin");
    const header = (i: number) => (calls[i].init.headers as Record<string, string>)["X-NMPI-CSRF"];
    expect(header(0)).toBeUndefined();
    expect(calls.slice(1).map((_, i) => header(i + 1))).toEqual(["1", "1", "1", "1"]);
    expect(calls[1].init.method).toBe("POST");
    expect(JSON.parse(calls[1].init.body as string)).toMatchObject({ collab: "lab" });
    expect(calls[2].init.method).toBe("PUT");
  });

  it("never puts a token in the URL or in storage", async () => {
    const calls = mockFetch(() => jsonResponse({ username: "alice", is_admin: false, identity_mode: "local" }));
    const setItem = vi.spyOn(Storage.prototype, "setItem");
    await api.signIn("secret-token");
    expect(calls[0].url).toBe("/auth/session");
    expect(calls[0].url).not.toContain("secret");
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ token: "secret-token" });
    expect((calls[0].init.headers as Record<string, string>)["X-NMPI-CSRF"]).toBe("1");
    expect(setItem).not.toHaveBeenCalled();
  });

  it("surfaces the server's detail text", async () => {
    mockFetch(() => jsonResponse({ detail: "collab 'x' has no quota left for SpiNNaker" }, { status: 403 }));
    await expect(api.submitJob({ code: "x", collab: "x", hardware_platform: "SpiNNaker" })).rejects.toMatchObject({
      status: 403,
      message: "collab 'x' has no quota left for SpiNNaker",
    });
  });

  it("formats validation errors", async () => {
    mockFetch(() => jsonResponse({ detail: [{ loc: ["body", "code"], msg: "String should have at least 1 character" }] }, { status: 422 }));
    await expect(api.submitJob({ code: "", collab: "x", hardware_platform: "SpiNNaker" })).rejects.toThrow(
      "code: String should have at least 1 character",
    );
  });

  it("reads a page and its Link header", async () => {
    mockFetch(() => jsonResponse([{ id: 3 }, { id: 2 }], { headers: { Link: '</jobs/?collab=lab&size=100&before_id=2>; rel="next"' } }));
    const page = await api.listJobsPage(api.jobsUrl("lab"));
    expect(page.items).toHaveLength(2);
    expect(page.next).toBe("/jobs/?collab=lab&size=100&before_id=2");
  });

  it("getMe is null on 401 without announcing it; other 401s are announced", async () => {
    mockFetch(() => jsonResponse({ detail: "not signed in" }, { status: 401 }));
    const listener = vi.fn();
    window.addEventListener(api.UNAUTHORIZED_EVENT, listener);
    expect(await api.getMe()).toBeNull();
    expect(listener).not.toHaveBeenCalled();
    await expect(api.listCollabs()).rejects.toThrow("not signed in");
    expect(listener).toHaveBeenCalledTimes(1);
    window.removeEventListener(api.UNAUTHORIZED_EVENT, listener);
  });
});

describe("uploadCodeArchive", () => {
  it("refuses a file over 16 MiB without sending anything", async () => {
    const xhr = mockXhr(() => ({ status: 201, body: archiveReply() }));
    const fetched = mockFetch(() => jsonResponse({}));
    const big = new File([new Uint8Array(api.MAX_ARCHIVE_BYTES + 1)], "big.zip");
    await expect(api.uploadCodeArchive("lab", big)).rejects.toBeInstanceOf(api.ApiError);
    await expect(api.uploadCodeArchive("lab", big)).rejects.toThrow(/^"big\.zip" is 16 MB: .*at most 16 MiB/);
    expect(xhr).toHaveLength(0);
    expect(fetched).toHaveLength(0);
    // Exactly the limit is allowed.
    await api.uploadCodeArchive("lab", new File([new Uint8Array(api.MAX_ARCHIVE_BYTES)], "edge.zip"));
    expect(xhr).toHaveLength(1);
  });

  it("posts the raw bytes with the CSRF header, reports progress and returns the archive", async () => {
    const calls = mockXhr((call) => {
      call.progress(2, 5);
      call.progress(5, 5);
      return { status: 201, body: archiveReply({ filename: "my model.zip" }) };
    });
    const file = new File(["PK..."], "my model.zip", { type: "application/zip" });
    const progress: [number, number][] = [];
    const archive = await api.uploadCodeArchive("my lab", file, (loaded, total) => progress.push([loaded, total]));
    expect(archive).toMatchObject({ sha256: SHA, path: `/code-archives/${SHA}.zip`, filename: "my model.zip" });
    expect(progress).toEqual([[2, 5], [5, 5]]);
    expect(calls).toHaveLength(1);
    const [call] = calls;
    expect(call.method).toBe("POST");
    const url = new URL(call.url, "http://x");
    expect(url.pathname).toBe("/code-archives/");
    expect(url.searchParams.get("collab")).toBe("my lab");
    expect(url.searchParams.get("filename")).toBe("my model.zip");
    expect(call.headers["X-NMPI-CSRF"]).toBe("1");
    expect(call.headers["Content-Type"]).toBe("application/octet-stream");
    expect(call.withCredentials).toBe(false); // same-origin: the cookie goes with it anyway
    expect(call.body).toBe(file);
  });

  it("takes 200 (the same bytes were already stored) like 201", async () => {
    mockXhr(() => ({ status: 200, body: archiveReply() }));
    await expect(api.uploadCodeArchive("lab", new File(["x"], "model.zip"))).resolves.toMatchObject({ sha256: SHA });
  });

  it("surfaces the server's detail, and announces a 401", async () => {
    mockXhr(() => ({ status: 415, body: { detail: "not a zip or tar archive" } }));
    await expect(api.uploadCodeArchive("lab", new File(["x"], "notes.zip"))).rejects.toMatchObject({
      status: 415,
      message: "not a zip or tar archive",
    });
    mockXhr(() => ({ status: 401, body: { detail: "not signed in" } }));
    const listener = vi.fn();
    window.addEventListener(api.UNAUTHORIZED_EVENT, listener);
    await expect(api.uploadCodeArchive("lab", new File(["x"], "model.zip"))).rejects.toMatchObject({ status: 401 });
    expect(listener).toHaveBeenCalledTimes(1);
    window.removeEventListener(api.UNAUTHORIZED_EVENT, listener);
  });

  it("says so when a proxy refuses the size with an HTML page, or the service cannot be reached", async () => {
    mockXhr(() => ({ status: 413, body: "<html><body>413 Request Entity Too Large</body></html>", headers: { "Content-Type": "text/html" } }));
    await expect(api.uploadCodeArchive("lab", new File(["x"], "model.zip"))).rejects.toThrow(
      "The archive is larger than the service accepts (16 MiB).",
    );
    const calls = mockXhr();
    const pending = api.uploadCodeArchive("lab", new File(["x"], "model.zip"));
    calls[0].fail();
    await expect(pending).rejects.toMatchObject({ status: 0, message: expect.stringContaining("cannot be reached") });
  });

  it("stops when its signal aborts", async () => {
    const calls = mockXhr();
    const controller = new AbortController();
    const pending = api.uploadCodeArchive("lab", new File(["x"], "model.zip"), undefined, controller.signal);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    calls[0].respond({ status: 201, body: archiveReply() }); // too late: ignored
  });

  it("gives the absolute URL the sites download it from", () => {
    expect(api.codeArchiveUrl(archiveReply())).toBe(`${window.location.origin}/code-archives/${SHA}.zip`);
  });
});

describe("URLs", () => {
  it("builds the jobs list query: size 100, filters, summary fields (no code, no log)", () => {
    const url = api.jobsUrl("my lab", {
      status: "running",
      platform: "SpiNNaker",
      tag: "v1",
      from: "2024-01-01T00:00:00.000Z",
      search: "mnist",
    });
    const params = new URL(url, "http://x").searchParams;
    expect(params.get("collab")).toBe("my lab");
    expect(params.get("size")).toBe("100");
    expect(params.get("status")).toBe("running");
    expect(params.get("hardware_platform")).toBe("SpiNNaker");
    expect(params.get("tags")).toBe("v1");
    expect(params.get("submitted_after")).toBe("2024-01-01T00:00:00.000Z");
    expect(params.has("submitted_before")).toBe(false);
    expect(params.get("fields")).toBe("summary");
    expect(params.get("search")).toBe("mnist");
    expect(params.has("with_log")).toBe(false);
  });
  it("builds the OIDC login URL with next", () => {
    expect(api.oidcLoginUrl("/auth/login", "/app/collabs/a b/jobs")).toBe("/auth/login?next=%2Fapp%2Fcollabs%2Fa%20b%2Fjobs");
  });
  it("splits the service status", () => {
    expect(api.serviceState({ status: "read-only: back at 14:00" })).toEqual({ state: "read-only", message: "back at 14:00" });
    expect(api.serviceState({ status: "ok" })).toEqual({ state: "ok", message: "" });
  });
});
