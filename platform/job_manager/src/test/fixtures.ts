import type { CodeArchive, Job } from "../api/types";

export function job(id: number, extra: Partial<Job> = {}): Job {
  return {
    id,
    resource_uri: `/jobs/${id}`,
    code: "print(1)",
    command: "run.py {system}",
    collab: "lab",
    user_id: "alice",
    status: "finished",
    hardware_platform: "SpiNNaker",
    hardware_config: null,
    input_data: [],
    output_data: { repository: "none", files: [] },
    tags: [],
    timestamp_submission: "2024-05-01T10:00:00Z",
    timestamp_completion: "2024-05-01T10:01:30Z",
    ...extra,
  };
}

export const SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/** What POST /code-archives/ answers. */
export function codeArchive(extra: Partial<CodeArchive> = {}): CodeArchive {
  return {
    sha256: SHA,
    size: 5,
    format: "zip",
    filename: "model.zip",
    collab: "lab",
    uploaded_by: "alice",
    uploaded: "2024-05-01T10:00:00Z",
    path: `/code-archives/${SHA}.zip`,
    ...extra,
  };
}
