// Every HTTP request the app makes goes through this module.
//
// - Authentication is the HttpOnly session cookie the server sets (POST /auth/session, or the
//   OIDC login): no token is ever kept by the app, in storage or in a URL.
// - Every request sends `credentials: "same-origin"`; every unsafe method (POST, PUT, PATCH,
//   DELETE) sends `X-NMPI-CSRF: 1`, without which the server refuses cookie-authenticated writes.
// - Errors are ApiError, whose message is the server's `detail` (or `error`) text.
// - Uploads use XMLHttpRequest instead of fetch, which cannot report upload progress; the same
//   rules apply to them.

import { formatBytes } from "../lib/format";
import type {
  AuthConfig,
  CodeArchive,
  Comment,
  DataSet,
  Job,
  JobFilters,
  JobSummary,
  JobSubmission,
  Me,
  Page,
  Project,
  ProjectSubmission,
  ProjectUpdate,
  Quota,
  ServerInfo,
  SpikeFile,
} from "./types";

/** Where the API lives: the same origin, at the root (no CORS). */
export const API_BASE: string = (import.meta.env.VITE_API_BASE as string | undefined) ?? "";

export const CSRF_HEADER = "X-NMPI-CSRF";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Dispatched on window when the API answers 401 (the session expired or was signed out). */
export const UNAUTHORIZED_EVENT = "nmpi:unauthorized";

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

type Query = Record<string, string | number | boolean | undefined | null | (string | number)[]>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => params.append(key, String(v)));
    else params.append(key, String(value));
  }
  const text = params.toString();
  if (!text) return path;
  return path + (path.includes("?") ? "&" : "?") + text;
}

/** The text of an error reply: FastAPI's `detail` (a string, or validation errors), or `error`. */
export function errorText(status: number, body: unknown, fallback: string): string {
  if (body && typeof body === "object") {
    const b = body as { detail?: unknown; error?: unknown };
    const detail = b.detail ?? b.error;
    if (typeof detail === "string" && detail) return detail;
    if (Array.isArray(detail)) {
      const parts = detail.map((d) => {
        if (d && typeof d === "object" && "msg" in d) {
          const loc = Array.isArray((d as { loc?: unknown }).loc)
            ? ((d as { loc: unknown[] }).loc.filter((l) => l !== "body").join("."))
            : "";
          return loc ? `${loc}: ${String((d as { msg: unknown }).msg)}` : String((d as { msg: unknown }).msg);
        }
        return JSON.stringify(d);
      });
      if (parts.length) return parts.join("; ");
    }
  }
  if (typeof body === "string" && body.trim() && body.length < 500) return body.trim();
  if (status === 503) return "The service is unavailable (maintenance): try again later.";
  return fallback || `Request failed (HTTP ${status})`;
}

/** The URL of `rel="next"` in an RFC 8288 Link header, or null. */
export function parseLinkNext(header: string | null | undefined): string | null {
  if (!header) return null;
  // Split on commas that start a new link value (a URL may itself contain commas).
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*((?:;[^;]*)*)$/.exec(part);
    if (!match) continue;
    const params = match[2];
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(params);
    const rels = (rel?.[1] ?? rel?.[2] ?? "").toLowerCase().split(/\s+/);
    if (rels.includes("next")) return match[1];
  }
  return null;
}

interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  /** Do not announce a 401 (used by the calls that find out whether one is signed in). */
  quiet401?: boolean;
}

async function send(method: string, url: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (UNSAFE.has(method)) headers[CSRF_HEADER] = "1";
  let body: BodyInit | undefined;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(API_BASE + url, {
      method,
      headers,
      body,
      credentials: "same-origin",
      signal: options.signal,
    });
  } catch (error) {
    if ((error as Error)?.name === "AbortError") throw error;
    throw new ApiError(0, "The service cannot be reached: check your connection and try again.");
  }
  if (!response.ok) {
    let parsed: unknown = null;
    try {
      const text = await response.text();
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    } catch {
      parsed = null;
    }
    if (response.status === 401 && !options.quiet401 && typeof window !== "undefined") {
      window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
    }
    throw new ApiError(
      response.status,
      errorText(response.status, parsed, `${method} ${url} failed (HTTP ${response.status})`),
    );
  }
  return response;
}

async function json<T>(method: string, url: string, options?: RequestOptions): Promise<T> {
  const response = await send(method, url, options);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

async function page<T>(url: string, signal?: AbortSignal): Promise<Page<T>> {
  const response = await send("GET", url, { signal });
  const items = (await response.json()) as T[];
  return { items, next: parseLinkNext(response.headers.get("Link")), url };
}

// --- service and identity -------------------------------------------------------------------

export const getServerInfo = (signal?: AbortSignal) => json<ServerInfo>("GET", "/", { signal });

export type ServiceState = { state: "ok" | "read-only" | "down" | string; message: string };

/** Splits ServerInfo.status ("read-only: back at 14:00") into state and message. */
export function serviceState(info: Pick<ServerInfo, "status">): ServiceState {
  const index = info.status.indexOf(":");
  if (index < 0) return { state: info.status.trim(), message: "" };
  return { state: info.status.slice(0, index).trim(), message: info.status.slice(index + 1).trim() };
}

export const getAuthConfig = () => json<AuthConfig>("GET", "/auth/config", { quiet401: true });

/** Who is signed in, or null when nobody is (401). */
export async function getMe(): Promise<Me | null> {
  try {
    return await json<Me>("GET", "/auth/me", { quiet401: true });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

/** Exchange an API token for a session cookie; the token is sent once and not kept. */
export const signIn = (token: string) =>
  json<Me>("POST", "/auth/session", { body: { token }, quiet401: true });

export const signOut = () => json<void>("DELETE", "/auth/session", { quiet401: true });

/** Where the OIDC sign-in starts (a full-page navigation), coming back to `next`. */
export function oidcLoginUrl(loginUrl: string, next: string): string {
  return `${loginUrl}${loginUrl.includes("?") ? "&" : "?"}next=${encodeURIComponent(next)}`;
}

/** Ids of the collabs where the user may submit jobs. */
export const listCollabs = () => json<string[]>("GET", "/collabs/");

// --- jobs --------------------------------------------------------------------------------------

export const JOBS_PAGE_SIZE = 100;

/**
 * First page of a collab's jobs with these filters: `size=100`, and `fields=summary` (each job
 * without its code, log and comments: a list never needs them).
 */
export function jobsUrl(collab: string, filters: JobFilters = {}, size = JOBS_PAGE_SIZE): string {
  return withQuery("/jobs/", {
    collab,
    size,
    fields: "summary",
    status: filters.status,
    hardware_platform: filters.platform,
    tags: filters.tag,
    submitted_after: filters.from,
    submitted_before: filters.to,
    search: filters.search?.slice(0, 100),
  });
}

export const listJobsPage = (url: string, signal?: AbortSignal) => page<JobSummary>(url, signal);

export const getJob = (id: number | string, options: { withComments?: boolean; signal?: AbortSignal } = {}) =>
  json<Job>("GET", withQuery(`/jobs/${encodeURIComponent(id)}`, { with_comments: options.withComments ? "true" : undefined }), {
    signal: options.signal,
  });

export async function getJobLog(id: number | string, signal?: AbortSignal): Promise<string> {
  const response = await send("GET", `/jobs/${encodeURIComponent(id)}/log`, { signal });
  return response.text();
}

export const submitJob = (body: JobSubmission) => json<Job>("POST", "/jobs/", { body });

export const deleteJob = (id: number | string) =>
  json<void>("DELETE", `/jobs/${encodeURIComponent(id)}`);

export const getOutputData = (id: number | string) =>
  json<DataSet>("GET", `/jobs/${encodeURIComponent(id)}/output_data`);

export const listComments = (id: number | string) =>
  json<Comment[]>("GET", `/jobs/${encodeURIComponent(id)}/comments/`);

export const addComment = (id: number | string, content: string) =>
  json<Comment>("POST", `/jobs/${encodeURIComponent(id)}/comments/`, { body: { content } });

export const addTags = (id: number | string, tags: string[]) =>
  json<string[]>("POST", `/jobs/${encodeURIComponent(id)}/tags/`, { body: tags });

export const removeTags = (id: number | string, tags: string[]) =>
  json<string[]>("DELETE", `/jobs/${encodeURIComponent(id)}/tags/`, { body: tags });

export const listTags = (collab: string) => json<string[]>("GET", withQuery("/tags/", { collab }));

// --- code archives ----------------------------------------------------------------------------

/** The largest archive one may upload: 16 MiB. The server enforces the same limit (413). */
export const MAX_ARCHIVE_BYTES = 16 * 1024 * 1024;
const MAX_ARCHIVE_TEXT = "16 MiB";

/** Called as the bytes go out: bytes sent so far, of `total`. */
export type UploadProgress = (loaded: number, total: number) => void;

/**
 * Upload a zip/tar archive of a job's code for `collab` (the user must be an editor of it):
 * `POST /code-archives/?collab=…&filename=…`, the file's bytes as the body. The same bytes
 * uploaded again for the collab give back the stored archive (200 instead of 201).
 */
export function uploadCodeArchive(
  collab: string,
  file: File,
  onProgress?: UploadProgress,
  signal?: AbortSignal,
): Promise<CodeArchive> {
  // Refused here rather than after sending megabytes the server would refuse anyway.
  if (file.size > MAX_ARCHIVE_BYTES) {
    return Promise.reject(
      new ApiError(
        413,
        `"${file.name}" is ${formatBytes(file.size)}: an uploaded archive may have at most ${MAX_ARCHIVE_TEXT}. ` +
          "Put it where the site can download it and give its URL instead.",
      ),
    );
  }
  const url = withQuery("/code-archives/", { collab, filename: file.name });
  return new Promise<CodeArchive>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException("The upload was cancelled", "AbortError"));
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API_BASE + url);
    // withCredentials stays false: the session cookie goes to the same origin only, as with
    // fetch's credentials "same-origin".
    xhr.withCredentials = false;
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader(CSRF_HEADER, "1");
    // Not the file's own type (application/zip, application/x-tar, …): the API takes raw bytes.
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    if (onProgress) {
      xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    }
    const onAbort = () => xhr.abort();
    signal?.addEventListener("abort", onAbort);
    const done = () => signal?.removeEventListener("abort", onAbort);
    xhr.onload = () => {
      done();
      let parsed: unknown = null;
      const isHtml = /text\/html/i.test(xhr.getResponseHeader("Content-Type") ?? "");
      try {
        parsed = JSON.parse(xhr.responseText);
      } catch {
        // A proxy's HTML error page says nothing useful: the fallback text does.
        parsed = isHtml ? null : xhr.responseText;
      }
      if (xhr.status === 200 || xhr.status === 201) {
        const archive = parsed as CodeArchive | null;
        if (archive && typeof archive.path === "string" && typeof archive.sha256 === "string") resolve(archive);
        else reject(new ApiError(xhr.status, "The service's reply to the upload is not an archive description."));
        return;
      }
      if (xhr.status === 401 && typeof window !== "undefined") window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
      const fallback =
        xhr.status === 413
          ? `The archive is larger than the service accepts (${MAX_ARCHIVE_TEXT}).`
          : `POST ${url} failed (HTTP ${xhr.status})`;
      reject(new ApiError(xhr.status, errorText(xhr.status, parsed, fallback)));
    };
    xhr.onerror = () => {
      done();
      reject(new ApiError(0, "The service cannot be reached: check your connection and try again."));
    };
    xhr.onabort = () => {
      done();
      reject(new DOMException("The upload was cancelled", "AbortError"));
    };
    xhr.send(file);
  });
}

/**
 * The absolute URL a job's `code` gives for an uploaded archive: the hardware sites download it
 * from there (with their provider key), so a path alone would not do.
 */
export function codeArchiveUrl(archive: Pick<CodeArchive, "path">): string {
  return new URL(API_BASE + archive.path, window.location.origin).href;
}

// --- projects (resource requests) and quotas -------------------------------------------------

export const listProjects = (query: { collab?: string; status?: string } = {}) =>
  json<Project[]>("GET", withQuery("/projects/", { collab: query.collab, status: query.status, size: 1000 }));

export const createProject = (body: ProjectSubmission) => json<Project>("POST", "/projects/", { body });

export const updateProject = (id: string, body: ProjectUpdate, asAdmin = false) =>
  json<Project>("PUT", withQuery(`/projects/${encodeURIComponent(id)}`, { as_admin: asAdmin ? "true" : undefined }), {
    body,
  });

export const deleteProject = (id: string) => json<void>("DELETE", `/projects/${encodeURIComponent(id)}`);

export const addQuota = (projectId: string, body: { platform: string; units: string; limit: number }) =>
  json<Quota>("POST", withQuery(`/projects/${encodeURIComponent(projectId)}/quotas/`, { as_admin: "true" }), { body });

export const updateQuota = (projectId: string, quotaId: number, body: { limit?: number; usage: number }) =>
  json<Quota>(
    "PUT",
    withQuery(`/projects/${encodeURIComponent(projectId)}/quotas/${quotaId}`, { as_admin: "true" }),
    { body },
  );

// --- output files (served by the hardware site, usually another origin) ----------------------

export const PREVIEW_LIMIT = 100 * 1024;

async function readLimited(response: Response, limit: number): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  if (!response.body) {
    const all = new Uint8Array(await response.arrayBuffer());
    return { bytes: all.slice(0, limit), truncated: all.length > limit };
  }
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
    if (total > limit) {
      truncated = true;
      await reader.cancel();
      break;
    }
  }
  const bytes = new Uint8Array(Math.min(total, limit));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, Math.min(chunk.length, bytes.length - offset));
    bytes.set(part, offset);
    offset += part.length;
    if (offset >= bytes.length) break;
  }
  return { bytes, truncated };
}

async function getFile(url: string, signal?: AbortSignal): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { credentials: "same-origin", signal });
  } catch (error) {
    if ((error as Error)?.name === "AbortError") throw error;
    throw new ApiError(0, `Cannot read ${url} (the site serving it may not allow it): download it instead.`);
  }
  if (!response.ok) throw new ApiError(response.status, `Cannot read ${url} (HTTP ${response.status})`);
  return response;
}

/** The first `limit` bytes (100 kB) of a text output file. */
export async function fetchTextPreview(
  url: string,
  limit = PREVIEW_LIMIT,
  signal?: AbortSignal,
): Promise<{ text: string; truncated: boolean }> {
  const { bytes, truncated } = await readLimited(await getFile(url, signal), limit);
  return { text: new TextDecoder("utf-8", { fatal: false }).decode(bytes), truncated };
}

export const SPIKES_LIMIT = 20 * 1024 * 1024;

export async function fetchSpikes(url: string, signal?: AbortSignal): Promise<SpikeFile> {
  const { bytes, truncated } = await readLimited(await getFile(url, signal), SPIKES_LIMIT);
  if (truncated) throw new ApiError(413, "The spike file is larger than 20 MB: download it instead.");
  const data = JSON.parse(new TextDecoder().decode(bytes)) as SpikeFile;
  if (data?.format !== "nmpi-spikes/1" || !Array.isArray(data.populations)) {
    throw new ApiError(422, "Not an nmpi-spikes/1 file");
  }
  return data;
}
