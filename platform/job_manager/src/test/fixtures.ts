import type { Job } from "../api/types";

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
