import type { Job } from "../api/types";

export function formatBytes(size: number | null | undefined): string {
  if (size === null || size === undefined || !Number.isFinite(size)) return "—";
  if (size < 1024) return `${size} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = size;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < units.length - 1);
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "—";
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

// One formatter for every date shown: toLocaleString(…, options) builds a new one per call,
// which costs a list of 100 jobs a visible share of its rendering.
let dateFormat: Intl.DateTimeFormat | null = null;

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  dateFormat ??= new Intl.DateTimeFormat(undefined, {
    year: "numeric",
    month: "short",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  return dateFormat.format(date);
}

/** Submission to completion (the API records no start time), or to now while not finished. */
export function jobDuration(job: Pick<Job, "timestamp_submission" | "timestamp_completion">, now = Date.now()): number | null {
  const start = Date.parse(job.timestamp_submission);
  if (Number.isNaN(start)) return null;
  const end = job.timestamp_completion ? Date.parse(job.timestamp_completion) : now;
  return Number.isNaN(end) ? null : end - start;
}

export function formatNumber(value: number, digits = 2): string {
  return value.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A datetime-local input's value (local time) as ISO-8601 with offset, or undefined. */
export function localInputToIso(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

export function fileName(item: { url: string; path?: string | null }): string {
  if (item.path) return item.path;
  try {
    const path = new URL(item.url, "http://x/").pathname;
    return decodeURIComponent(path.split("/").filter(Boolean).pop() ?? item.url);
  } catch {
    return item.url;
  }
}

/** Is `code` a reference to code elsewhere (a git repository or an archive URL)? */
export function isCodeUrl(code: string): boolean {
  return /^(https?:\/\/|git@|ssh:\/\/)\S+$/.test(code.trim());
}
