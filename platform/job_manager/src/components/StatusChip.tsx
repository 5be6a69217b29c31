import Chip from "@mui/material/Chip";
import type { JobStatus } from "../api/types";

const COLOURS: Record<string, "default" | "info" | "primary" | "warning" | "success" | "error" | "secondary"> = {
  submitted: "default",
  validated: "info",
  mapped: "info",
  running: "primary",
  finished: "success",
  error: "error",
  removed: "default",
};

/** The status as a coloured chip with its name as text (colour is never the only cue). */
export function StatusChip({ status }: { status: JobStatus | string }) {
  return <Chip size="small" label={status} color={COLOURS[status] ?? "default"} variant={status === "removed" ? "outlined" : "filled"} />;
}
