import { useCallback, useEffect, useLayoutEffect, useRef, useState, type FormEvent, type ReactNode } from "react";
import { Link as RouterLink, useNavigate, useParams } from "react-router-dom";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogContentText from "@mui/material/DialogContentText";
import DialogTitle from "@mui/material/DialogTitle";
import Link from "@mui/material/Link";
import Paper from "@mui/material/Paper";
import Stack from "@mui/material/Stack";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import * as api from "../api/client";
import { FINAL_STATUSES, type Comment, type Job } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { Loading } from "../components/Loading";
import { OutputFiles } from "../components/OutputFiles";
import { StatusChip } from "../components/StatusChip";
import { formatDate, formatDuration, formatNumber, isCodeUrl, jobDuration } from "../lib/format";
import { usePageTitle, usePolling } from "../lib/hooks";
import type { ResubmitState } from "./NewJob";

export const FOLLOW_MS = 2000;

function Section({ title, children, id }: { title: string; children: ReactNode; id: string }) {
  return (
    <Paper component="section" aria-labelledby={id} sx={{ p: 2, minWidth: 0 }}>
      <Typography variant="h6" component="h2" id={id} gutterBottom>
        {title}
      </Typography>
      {children}
    </Paper>
  );
}

const preSx = {
  m: 0,
  p: 1,
  bgcolor: "grey.100",
  borderRadius: 1,
  overflow: "auto",
  fontSize: 13,
  fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
  whiteSpace: "pre" as const,
};

/** The log, following while the job runs; scrolls to the end unless the user scrolled up. */
function LogView({ log }: { log: string }) {
  const box = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  useLayoutEffect(() => {
    const element = box.current;
    if (element && stick.current) element.scrollTop = element.scrollHeight;
  }, [log]);
  return (
    <Box
      component="pre"
      ref={box}
      tabIndex={0}
      aria-label="Job log"
      onScroll={() => {
        const element = box.current;
        if (element) stick.current = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
      }}
      sx={{ ...preSx, maxHeight: 420, whiteSpace: "pre-wrap", wordBreak: "break-word" }}
    >
      {log || "(empty)"}
    </Box>
  );
}

export default function JobDetail() {
  const { collab = "", id = "" } = useParams();
  usePageTitle(`Job ${id}`);
  const navigate = useNavigate();
  const [job, setJob] = useState<Job | null>(null);
  const [log, setLog] = useState<string | null>(null);
  const [comments, setComments] = useState<Comment[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [confirmRemove, setConfirmRemove] = useState(false);
  const [comment, setComment] = useState("");
  const [newTag, setNewTag] = useState("");
  const [busy, setBusy] = useState(false);

  const loadJob = useCallback(async () => {
    const j = await api.getJob(id, { withComments: true });
    setJob(j);
    setComments(j.comments ?? []);
    setError(null);
    return j;
  }, [id]);
  const loadLog = useCallback(async () => setLog(await api.getJobLog(id)), [id]);

  useEffect(() => {
    setJob(null);
    setLog(null);
    loadJob().catch((e: Error) => setError(e.message));
    loadLog().catch(() => setLog(""));
  }, [loadJob, loadLog]);

  const following = job !== null && !FINAL_STATUSES.includes(job.status);
  usePolling(
    async () => {
      const j = await loadJob();
      await loadLog();
      return j;
    },
    FOLLOW_MS,
    following,
  );

  const act = async (work: () => Promise<void>) => {
    setBusy(true);
    setActionError(null);
    try {
      await work();
    } catch (e) {
      setActionError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (error && !job) return <ErrorAlert error={error} />;
  if (!job) return <Loading label="Loading the job" />;

  const jobsPath = `/collabs/${encodeURIComponent(collab)}/jobs`;
  const resubmit: ResubmitState = {
    job: { code: job.code, command: job.command, hardware_platform: job.hardware_platform, hardware_config: job.hardware_config, tags: job.tags },
  };
  const onComment = (event: FormEvent) => {
    event.preventDefault();
    const content = comment.trim();
    if (!content) return;
    void act(async () => {
      const added = await api.addComment(job.id, content);
      setComments((c) => [...c, added]);
      setComment("");
    });
  };
  const onTag = (event: FormEvent) => {
    event.preventDefault();
    const tag = newTag.trim();
    if (tag.length < 2 || tag.length > 100) {
      setActionError("A tag has 2 to 100 characters.");
      return;
    }
    void act(async () => {
      const tags = await api.addTags(job.id, [tag]);
      setJob({ ...job, tags });
      setNewTag("");
    });
  };

  return (
    <Stack spacing={2}>
      <Box>
        <Link component={RouterLink} to={jobsPath}>
          ← Jobs of {collab}
        </Link>
      </Box>
      <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 2 }}>
        <Typography variant="h4" component="h1">
          Job {job.id}
        </Typography>
        <StatusChip status={job.status} />
        {following && (
          <Typography variant="body2" color="text.secondary" role="status">
            Following: refreshed every {FOLLOW_MS / 1000} s
          </Typography>
        )}
        <Box sx={{ flexGrow: 1 }} />
        <Button variant="outlined" onClick={() => navigate(`${jobsPath}/new`, { state: resubmit })}>
          Resubmit
        </Button>
        {job.status !== "removed" && (
          <Button color="error" variant="outlined" onClick={() => setConfirmRemove(true)}>
            Remove
          </Button>
        )}
      </Box>
      <ErrorAlert error={actionError} onClose={() => setActionError(null)} />
      {error && <ErrorAlert error={`Refreshing failed: ${error}`} />}
      {job.status === "removed" && (
        <ErrorAlert error={`Removed${job.removed_by ? ` by ${job.removed_by}` : ""}${job.removed_at ? ` on ${formatDate(job.removed_at)}` : ""}${job.removal_reason ? `: ${job.removal_reason}` : ""}.`} />
      )}

      <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: { xs: "minmax(0,1fr)", lg: "minmax(0,1fr) minmax(0,1fr)" } }}>
        <Section title="Overview" id="overview">
          <Box component="dl" sx={{ display: "grid", gridTemplateColumns: "max-content 1fr", columnGap: 2, rowGap: 0.5, m: 0, "& dt": { fontWeight: 600 }, "& dd": { m: 0, wordBreak: "break-word" } }}>
            <dt>Platform</dt><dd>{job.hardware_platform}</dd>
            <dt>Submitted by</dt><dd>{job.user_id}</dd>
            <dt>Collab</dt><dd>{job.collab}</dd>
            <dt>Command</dt><dd><code>{job.command || "(none)"}</code></dd>
            <dt>Duration</dt><dd>{formatDuration(jobDuration(job))}{job.timestamp_completion ? "" : " so far"}</dd>
            <dt>Resource usage</dt>
            <dd>{job.resource_usage ? `${formatNumber(job.resource_usage.value, 4)} ${job.resource_usage.units}` : "—"}</dd>
          </Box>
          <Typography variant="subtitle1" component="h3" sx={{ mt: 2 }}>Timeline</Typography>
          <Box component="ol" aria-label="Status timeline" sx={{ m: 0, pl: 3 }}>
            <li>Submitted: <time dateTime={job.timestamp_submission}>{formatDate(job.timestamp_submission)}</time></li>
            <li>Started: {["running", "finished", "error", "mapped"].includes(job.status) ? "yes (the API records no start time)" : "not yet"}</li>
            <li>
              {job.status === "error" ? "Failed" : "Finished"}:{" "}
              {job.timestamp_completion ? <time dateTime={job.timestamp_completion}>{formatDate(job.timestamp_completion)}</time> : "not yet"}
            </li>
          </Box>
        </Section>

        <Section title="Tags and comments" id="tags">
          <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, mb: 1 }} aria-label="Tags">
            {job.tags.length === 0 && <Typography color="text.secondary">No tags.</Typography>}
            {job.tags.map((tag) => (
              <Chip
                key={tag}
                label={tag}
                onDelete={busy ? undefined : () => void act(async () => setJob({ ...job, tags: await api.removeTags(job.id, [tag]) }))}
                aria-label={`Tag ${tag}: press Delete or click the cross to remove it`}
                title={`Remove tag ${tag}`}
              />
            ))}
          </Box>
          <Box component="form" onSubmit={onTag} sx={{ display: "flex", gap: 1, mb: 2 }}>
            <TextField size="small" id="new-tag" label="New tag" value={newTag} onChange={(e) => setNewTag(e.target.value)} />
            <Button type="submit" disabled={busy || !newTag.trim()}>Add tag</Button>
          </Box>
          <Box component="ul" aria-label="Comments" sx={{ listStyle: "none", p: 0, m: 0 }}>
            {comments.length === 0 && <Typography component="li" color="text.secondary">No comments.</Typography>}
            {comments.map((c) => (
              <Box component="li" key={c.id} sx={{ borderLeft: 3, borderColor: "divider", pl: 1, mb: 1 }}>
                <Typography variant="body2" color="text.secondary">{c.user_id}, {formatDate(c.timestamp)}</Typography>
                <Typography sx={{ whiteSpace: "pre-wrap", wordBreak: "break-word" }}>{c.content}</Typography>
              </Box>
            ))}
          </Box>
          <Box component="form" onSubmit={onComment} sx={{ display: "flex", flexDirection: "column", gap: 1 }}>
            <TextField id="new-comment" label="Add a comment" multiline minRows={2} value={comment} onChange={(e) => setComment(e.target.value)} slotProps={{ htmlInput: { maxLength: 10000 } }} />
            <Box><Button type="submit" variant="outlined" disabled={busy || !comment.trim()}>Post comment</Button></Box>
          </Box>
        </Section>
      </Box>

      <Section title="Code" id="code">
        {isCodeUrl(job.code) ? (
          <Typography>
            From <Link href={job.code.trim()} rel="noopener noreferrer" target="_blank">{job.code.trim()}</Link>
          </Typography>
        ) : (
          <Box component="pre" tabIndex={0} aria-label="Job code" sx={{ ...preSx, maxHeight: 420 }}>{job.code}</Box>
        )}
      </Section>

      <Section title="Hardware configuration" id="hw">
        <Box component="pre" sx={preSx}>{job.hardware_config ? JSON.stringify(job.hardware_config, null, 2) : "(none)"}</Box>
      </Section>

      <Section title="Log" id="log">
        {log === null ? <Loading label="Loading the log" /> : <LogView log={log} />}
      </Section>

      <Section title="Output files" id="outputs">
        <OutputFiles files={job.output_data.files} />
      </Section>

      <Section title="Provenance" id="provenance">
        <Box component="pre" tabIndex={0} aria-label="Provenance" sx={{ ...preSx, maxHeight: 420 }}>
          {job.provenance ? JSON.stringify(job.provenance, null, 2) : "(none yet)"}
        </Box>
      </Section>

      <Dialog open={confirmRemove} onClose={() => setConfirmRemove(false)} aria-labelledby="remove-title" aria-describedby="remove-text">
        <DialogTitle id="remove-title">Remove job {job.id}?</DialogTitle>
        <DialogContent>
          <DialogContentText id="remove-text">
            The job disappears from the collab's lists. Its outputs stay at the hardware site.
          </DialogContentText>
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setConfirmRemove(false)} autoFocus>Cancel</Button>
          <Button
            color="error"
            variant="contained"
            disabled={busy}
            onClick={() =>
              void act(async () => {
                await api.deleteJob(job.id);
                setConfirmRemove(false);
                navigate(jobsPath);
              })
            }
          >
            Remove
          </Button>
        </DialogActions>
      </Dialog>
    </Stack>
  );
}
