// Shapes of the job-queue API (platform/job_queue/src/nmpi_job_queue/schemas/*.py).

export type JobStatus =
  | "submitted"
  | "validated"
  | "running"
  | "mapped"
  | "finished"
  | "error"
  | "removed";

export const JOB_STATUSES: JobStatus[] = [
  "submitted",
  "validated",
  "running",
  "mapped",
  "finished",
  "error",
];

/** Statuses after which a job changes no more. */
export const FINAL_STATUSES: JobStatus[] = ["finished", "error", "removed"];

export interface DataItem {
  url: string;
  path?: string | null;
  content_type?: string | null;
  size?: number | null;
  hash?: string | null;
}

export interface DataSet {
  repository: string;
  files: DataItem[];
}

export interface ResourceUsage {
  value: number;
  units: string;
}

export interface Comment {
  id: number;
  job_id: number;
  content: string;
  user_id: string;
  timestamp: string;
  resource_uri: string;
}

export type HardwareConfig = Record<string, unknown>;

export interface Job {
  id: number;
  resource_uri: string;
  code: string;
  command?: string | null;
  collab: string;
  user_id: string;
  status: JobStatus;
  hardware_platform: string;
  hardware_config?: HardwareConfig | null;
  input_data: DataItem[];
  output_data: DataSet;
  provenance?: Record<string, unknown> | null;
  resource_usage?: ResourceUsage | null;
  tags: string[];
  timestamp_submission: string;
  timestamp_completion?: string | null;
  comments?: Comment[] | null;
  log?: string | null;
  removed_by?: string | null;
  removed_at?: string | null;
  removal_reason?: string | null;
}

/** A job as lists give it with fields=summary: without code, log and comments. */
export type JobSummary = Omit<Job, "code" | "log" | "comments">;

export interface JobSubmission {
  code: string;
  command?: string | null;
  collab: string;
  hardware_platform: string;
  hardware_config?: HardwareConfig | null;
  input_data?: DataItem[] | null;
  tags?: string[] | null;
}

export type CodeArchiveFormat = "zip" | "tar" | "tar.gz" | "tar.bz2" | "tar.xz";

/** An uploaded code archive (`POST /code-archives/`), stored once per collab and content. */
export interface CodeArchive {
  /** Hex SHA-256 of the bytes: the archive's identity. */
  sha256: string;
  size: number;
  format: CodeArchiveFormat;
  /** The name the file had when uploaded. */
  filename: string;
  collab: string;
  uploaded_by: string;
  /** ISO-8601 */
  uploaded: string;
  /** Where the API serves it, from its root: `/code-archives/<sha256>.<format>`. */
  path: string;
}

export type ProjectStatus = "in preparation" | "under review" | "accepted" | "rejected";

export interface Quota {
  id: number;
  resource_uri: string;
  project: string;
  platform: string;
  units: string;
  limit: number;
  usage: number;
}

export interface Project {
  id: string;
  context: string;
  resource_uri: string;
  collab: string;
  owner: string;
  title: string;
  abstract: string;
  description: string;
  status: ProjectStatus;
  submission_date?: string | null;
  decision_date?: string | null;
  quotas: Quota[];
}

export interface ProjectSubmission {
  collab: string;
  title: string;
  abstract: string;
  description?: string | null;
  status?: "in preparation" | "under review";
}

export interface ProjectUpdate {
  title?: string;
  abstract?: string;
  description?: string;
  owner?: string;
  status?: ProjectStatus;
}

export interface ServerInfo {
  about: string;
  version: string;
  /** "ok", "read-only" or "down", possibly followed by ": <operator's message>". */
  status: string;
  links: Record<string, string>;
  authentication: Record<string, unknown>;
}

export interface AuthConfig {
  identity_mode: "local" | "oidc";
  login_url: string | null;
}

export interface Me {
  username: string;
  is_admin: boolean;
  identity_mode: string;
}

/** The spike file the emulators write beside each neo output file (`*.spikes.json`). */
export interface SpikeFile {
  format: "nmpi-spikes/1";
  t_stop: number;
  populations: { label: string; spiketrains: number[][] }[];
  truncated: boolean;
}

export interface JobFilters {
  status?: string;
  platform?: string;
  tag?: string;
  /** ISO-8601 */
  from?: string;
  /** ISO-8601 */
  to?: string;
  search?: string;
}

export interface Page<T> {
  items: T[];
  /** URL of the next page (from the `Link: <...>; rel="next"` header), or null on the last. */
  next: string | null;
  /** The URL this page was read from. */
  url: string;
}
