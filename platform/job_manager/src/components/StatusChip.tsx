import Chip from "@mui/material/Chip";
import type { JobStatus } from "../api/types";

export type StatusColour = "default" | "info" | "primary" | "warning" | "success" | "error" | "secondary";

const COLOURS: Record<string, StatusColour> = {
  submitted: "default",
  validated: "info",
  mapped: "info",
  running: "primary",
  finished: "success",
  error: "error",
  removed: "default",
};

/** A job status's colour in the theme's palette ("default": none). */
export function statusColour(status: JobStatus | string): StatusColour {
  return COLOURS[status] ?? "default";
}

/** The status as a coloured chip with its name as text (colour is never the only cue). */
export function StatusChip({ status }: { status: JobStatus | string }) {
  return <Chip size="small" label={status} color={statusColour(status)} variant={status === "removed" ? "outlined" : "filled"} />;
}
