import { memo } from "react";
import { Link as RouterLink } from "react-router-dom";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import Link from "@mui/material/Link";
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
import { formatDate, formatDuration, jobDuration } from "../lib/format";
import { StatusChip } from "./StatusChip";

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

const JobRow = memo(function JobRow({ job, collab, now }: { job: JobSummary; collab: string; now: number }) {
  const href = `/collabs/${encodeURIComponent(collab)}/jobs/${job.id}`;
  return (
    <TableRow hover>
      <TableCell component="th" scope="row">
        <Link component={RouterLink} to={href} aria-label={`Job ${job.id}`}>
          {job.id}
        </Link>
      </TableCell>
      <TableCell>
        <StatusChip status={job.status} />
      </TableCell>
      <TableCell>{job.hardware_platform}</TableCell>
      <TableCell sx={{ whiteSpace: "nowrap" }}>
        <time dateTime={job.timestamp_submission}>{formatDate(job.timestamp_submission)}</time>
      </TableCell>
      <TableCell sx={{ whiteSpace: "nowrap" }}>
        {formatDuration(jobDuration(job, now))}
        {!job.timestamp_completion && job.status !== "removed" ? " so far" : ""}
      </TableCell>
      <TableCell>
        <Box sx={{ display: "flex", flexWrap: "wrap", gap: 0.5 }}>
          {job.tags.map((tag) => (
            <Chip key={tag} label={tag} size="small" variant="outlined" />
          ))}
        </Box>
      </TableCell>
      <TableCell>{job.user_id}</TableCell>
    </TableRow>
  );
});

/** One page of a collab's jobs; rows are keyed by id, so a refreshed page updates in place. */
export function JobsTable({ collab, jobs, pageNumber, hasNext, hasPrevious, onNext, onPrevious, busy, now = Date.now() }: Props) {
  return (
    <Stack spacing={1}>
      <TableContainer component={Paper} sx={{ overflowX: "auto" }}>
        <Table size="small" aria-label={`Jobs of collab ${collab}, page ${pageNumber}`} sx={{ minWidth: 720 }}>
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
