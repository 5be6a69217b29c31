import { memo } from "react";
import { Link as RouterLink } from "react-router-dom";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Stack from "@mui/material/Stack";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableContainer from "@mui/material/TableContainer";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Typography from "@mui/material/Typography";
import Paper from "@mui/material/Paper";
import type { JobSummary } from "../api/types";
import { statusColour } from "./StatusChip";
import { formatDate, formatDuration, jobDuration } from "../lib/format";

interface Props {
  collab: string;
  jobs: JobSummary[];
  pageNumber: number;
  hasNext: boolean;
  hasPrevious: boolean;
  onNext: () => void;
  onPrevious: () => void;
  busy?: boolean;
  now?: number;
}

// 100 rows of MUI TableCells, Links and Chips cost some 400 ms of rendering on a slow machine
// (each is an emotion-styled component): the rows are plain elements styled once, by the
// table, looking the same (bench: make bench-job-manager).
const ROWS_SX = {
  "& tbody td, & tbody th": {
    p: "6px 16px",
    borderBottom: 1,
    borderColor: "divider",
    typography: "body2",
    textAlign: "left",
    fontWeight: 400,
    verticalAlign: "middle",
  },
  "& tbody tr:hover": { bgcolor: "action.hover" },
  "& tbody a": { color: "primary.main" },
  "& .chip": {
    display: "inline-flex",
    alignItems: "center",
    height: 24,
    px: 1,
    borderRadius: 4,
    fontSize: "0.8125rem",
    whiteSpace: "nowrap",
    bgcolor: "action.selected",
    color: "text.primary",
  },
  "& .chip.outlined": { bgcolor: "transparent", border: 1, borderColor: "grey.400" },
  ...Object.fromEntries(
    ["info", "primary", "warning", "success", "error", "secondary"].map((c) => [`& .chip.${c}`, { bgcolor: `${c}.main`, color: `${c}.contrastText` }]),
  ),
  "& .tags": { display: "flex", flexWrap: "wrap", gap: 0.5 },
  "& .nowrap": { whiteSpace: "nowrap" },
};

const JobRow = memo(function JobRow({ job, collab, now }: { job: JobSummary; collab: string; now: number }) {
  const href = `/collabs/${encodeURIComponent(collab)}/jobs/${job.id}`;
  const colour = statusColour(job.status);
  const status = job.status === "removed" ? "outlined" : colour === "default" ? "" : colour;
  return (
    <tr>
      <th scope="row">
        <RouterLink to={href} aria-label={`Job ${job.id}`}>
          {job.id}
        </RouterLink>
      </th>
      <td>
        <span className={`chip ${status}`}>{job.status}</span>
      </td>
      <td>{job.hardware_platform}</td>
      <td className="nowrap">
        <time dateTime={job.timestamp_submission}>{formatDate(job.timestamp_submission)}</time>
      </td>
      <td className="nowrap">
        {formatDuration(jobDuration(job, now))}
        {!job.timestamp_completion && job.status !== "removed" ? " so far" : ""}
      </td>
      <td>
        <span className="tags">
          {job.tags.map((tag) => (
            <span key={tag} className="chip outlined">
              {tag}
            </span>
          ))}
        </span>
      </td>
      <td>{job.user_id}</td>
    </tr>
  );
});

/** One page of a collab's jobs; rows are keyed by id, so a refreshed page updates in place. */
export function JobsTable({ collab, jobs, pageNumber, hasNext, hasPrevious, onNext, onPrevious, busy, now = Date.now() }: Props) {
  return (
    <Stack spacing={1}>
      <TableContainer component={Paper} sx={{ overflowX: "auto" }}>
        <Table size="small" aria-label={`Jobs of collab ${collab}, page ${pageNumber}`} sx={{ minWidth: 720, ...ROWS_SX }}>
          <TableHead>
            <TableRow>
              <TableCell scope="col">ID</TableCell>
              <TableCell scope="col">Status</TableCell>
              <TableCell scope="col">Platform</TableCell>
              <TableCell scope="col">Submitted</TableCell>
              <TableCell scope="col">Duration</TableCell>
              <TableCell scope="col">Tags</TableCell>
              <TableCell scope="col">User</TableCell>
            </TableRow>
          </TableHead>
          <TableBody>
            {jobs.map((job) => (
              <JobRow key={job.id} job={job} collab={collab} now={now} />
            ))}
            {jobs.length === 0 && (
              <TableRow>
                <TableCell colSpan={7}>
                  <Typography color="text.secondary">No jobs match.</Typography>
                </TableCell>
              </TableRow>
            )}
          </TableBody>
        </Table>
      </TableContainer>
      <Box component="nav" aria-label="Pages of jobs" sx={{ display: "flex", alignItems: "center", gap: 1, justifyContent: "flex-end" }}>
        <Button onClick={onPrevious} disabled={!hasPrevious || busy}>
          Previous page
        </Button>
        <Typography variant="body2" aria-live="polite">
          Page {pageNumber}
        </Typography>
        <Button onClick={onNext} disabled={!hasNext || busy}>
          Next page
        </Button>
      </Box>
    </Stack>
  );
}
