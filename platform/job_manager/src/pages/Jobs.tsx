import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { Link as RouterLink, useParams, useSearchParams } from "react-router-dom";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import MenuItem from "@mui/material/MenuItem";
import Paper from "@mui/material/Paper";
import Stack from "@mui/material/Stack";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { jobsUrl, listJobsPage, listTags } from "../api/client";
import { JOB_STATUSES, type JobFilters, type JobSummary, type Page } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { JobsTable } from "../components/JobsTable";
import { Loading } from "../components/Loading";
import { localInputToIso } from "../lib/format";
import { ALL_PLATFORMS } from "../lib/hardware";
import { usePageTitle, usePolling } from "../lib/hooks";

const FILTER_KEYS = ["status", "platform", "tag", "from", "to", "search"] as const;
type FilterForm = Record<(typeof FILTER_KEYS)[number], string>;

export const POLL_MS = 5000;

function formFrom(params: URLSearchParams): FilterForm {
  return Object.fromEntries(FILTER_KEYS.map((k) => [k, params.get(k) ?? ""])) as FilterForm;
}

export default function Jobs() {
  const { collab = "" } = useParams();
  usePageTitle(`Jobs of ${collab}`);
  const [params, setParams] = useSearchParams();
  const applied = useMemo(() => formFrom(params), [params]);
  const [form, setForm] = useState<FilterForm>(applied);
  const [tags, setTags] = useState<string[]>([]);

  const filters: JobFilters = useMemo(
    () => ({
      status: applied.status || undefined,
      platform: applied.platform || undefined,
      tag: applied.tag || undefined,
      from: localInputToIso(applied.from),
      to: localInputToIso(applied.to),
      search: applied.search.trim() || undefined,
    }),
    [applied],
  );
  const firstUrl = useMemo(() => jobsUrl(collab, filters), [collab, filters]);

  // Keyset paging: the current page's URL, and the URLs of the pages before it.
  const [url, setUrl] = useState(firstUrl);
  const [previous, setPrevious] = useState<string[]>([]);
  const [jobs, setJobs] = useState<JobSummary[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [now, setNow] = useState(() => Date.now());
  const current = useRef(url);
  current.current = url;

  useEffect(() => {
    setForm(applied);
  }, [applied]);

  useEffect(() => {
    setUrl(firstUrl);
    setPrevious([]);
  }, [firstUrl]);

  useEffect(() => {
    listTags(collab).then(setTags).catch(() => setTags([]));
  }, [collab]);

  const load = useCallback(async (target: string, signal?: AbortSignal, pending?: Promise<Page<JobSummary>>) => {
    const page = await (pending ?? listJobsPage(target, signal));
    if (current.current !== target) return; // the user moved on meanwhile
    setJobs(page.items);
    setNext(page.next);
    setError(null);
    setNow(Date.now());
  }, []);

  // The first page is asked for while the page first renders rather than after: rendering the
  // filters takes a few hundred ms on a slow machine, and the request runs meanwhile.
  const early = useRef<{ url: string; page: Promise<Page<JobSummary>> } | null>(null);
  if (early.current === null) {
    const page = listJobsPage(firstUrl);
    page.catch(() => undefined); // handled where it is awaited (an unmount never awaits it)
    early.current = { url: firstUrl, page };
  }

  useEffect(() => {
    const controller = new AbortController();
    setBusy(true);
    const first = early.current;
    const pending = first && first.url === url ? first.page : undefined;
    if (first) early.current = { url: "", page: first.page }; // used once
    load(url, controller.signal, pending)
      .catch((e: Error) => {
        if (e.name !== "AbortError") setError(e.message);
      })
      .finally(() => setBusy(false));
    return () => controller.abort();
  }, [url, load]);

  // Live updates: re-read the page shown every 5 s while the tab is visible.
  usePolling(
    () =>
      load(current.current).catch((e: Error) => {
        setError(e.message);
      }),
    POLL_MS,
    jobs !== null,
  );

  const apply = (values: FilterForm) => {
    const nextParams = new URLSearchParams();
    for (const k of FILTER_KEYS) if (values[k]) nextParams.set(k, values[k]);
    setParams(nextParams, { replace: true });
  };
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    apply(form);
  };
  const setAndApply = (key: keyof FilterForm, value: string) => {
    const values = { ...form, [key]: value };
    setForm(values);
    apply(values);
  };

  return (
    <Stack spacing={2}>
      <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 2 }}>
        <Typography variant="h4" component="h1" sx={{ flexGrow: 1, wordBreak: "break-word" }}>
          Jobs of {collab}
        </Typography>
        <Button variant="contained" component={RouterLink} to={`/collabs/${encodeURIComponent(collab)}/jobs/new`}>
          New job
        </Button>
      </Box>
      <Paper component="form" onSubmit={onSubmit} aria-label="Filter jobs" sx={{ p: 2 }}>
        <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: { xs: "1fr", sm: "1fr 1fr", md: "repeat(3, 1fr)", lg: "repeat(6, 1fr)" } }}>
          <TextField select label="Status" id="filter-status" value={form.status} onChange={(e) => setAndApply("status", e.target.value)} size="small">
            <MenuItem value="">Any</MenuItem>
            {JOB_STATUSES.map((s) => (
              <MenuItem key={s} value={s}>{s}</MenuItem>
            ))}
          </TextField>
          <TextField select label="Platform" id="filter-platform" value={form.platform} onChange={(e) => setAndApply("platform", e.target.value)} size="small">
            <MenuItem value="">Any</MenuItem>
            {ALL_PLATFORMS.map((p) => (
              <MenuItem key={p} value={p}>{p}</MenuItem>
            ))}
          </TextField>
          <TextField select label="Tag" id="filter-tag" value={form.tag} onChange={(e) => setAndApply("tag", e.target.value)} size="small">
            <MenuItem value="">Any</MenuItem>
            {form.tag && !tags.includes(form.tag) && <MenuItem value={form.tag}>{form.tag}</MenuItem>}
            {tags.map((t) => (
              <MenuItem key={t} value={t}>{t}</MenuItem>
            ))}
          </TextField>
          <TextField label="Submitted after" type="datetime-local" id="filter-from" value={form.from} onChange={(e) => setForm({ ...form, from: e.target.value })} size="small" slotProps={{ inputLabel: { shrink: true } }} />
          <TextField label="Submitted before" type="datetime-local" id="filter-to" value={form.to} onChange={(e) => setForm({ ...form, to: e.target.value })} size="small" slotProps={{ inputLabel: { shrink: true } }} />
          <TextField label="Search" type="search" id="filter-search" value={form.search} onChange={(e) => setForm({ ...form, search: e.target.value })} size="small" helperText="a job id, or text in the command or a tag" slotProps={{ htmlInput: { maxLength: 100 } }} />
        </Box>
        <Box sx={{ display: "flex", gap: 1, mt: 2, justifyContent: "flex-end" }}>
          <Button type="button" onClick={() => { const empty = formFrom(new URLSearchParams()); setForm(empty); apply(empty); }}>
            Clear filters
          </Button>
          <Button type="submit" variant="outlined">
            Apply filters
          </Button>
        </Box>
      </Paper>
      <ErrorAlert error={error} />
      {jobs === null && !error && <Loading label="Loading jobs" />}
      {jobs !== null && (
        <JobsTable
          collab={collab}
          jobs={jobs}
          now={now}
          busy={busy}
          pageNumber={previous.length + 1}
          hasNext={Boolean(next)}
          hasPrevious={previous.length > 0}
          onNext={() => {
            if (!next) return;
            setPrevious((p) => [...p, url]);
            setUrl(next);
          }}
          onPrevious={() => {
            const back = previous[previous.length - 1];
            if (back === undefined) return;
            setPrevious((p) => p.slice(0, -1));
            setUrl(back);
          }}
        />
      )}
    </Stack>
  );
}
