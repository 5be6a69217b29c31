import { lazy, Suspense, useEffect, useMemo, useRef, useState, type ChangeEvent, type FormEvent } from "react";
import { Link as RouterLink, useLocation, useNavigate, useParams } from "react-router-dom";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import LinearProgress from "@mui/material/LinearProgress";
import MenuItem from "@mui/material/MenuItem";
import Paper from "@mui/material/Paper";
import Stack from "@mui/material/Stack";
import Tab from "@mui/material/Tab";
import Tabs from "@mui/material/Tabs";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { codeArchiveUrl, listProjects, submitJob, uploadCodeArchive } from "../api/client";
import type { CodeArchive, HardwareConfig, Job, Project } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { HardwareConfigEditor } from "../components/HardwareConfigEditor";
import { Loading } from "../components/Loading";
import { QuotaInfo, quotaStatus } from "../components/QuotaInfo";
import { formatBytes, isCodeUrl } from "../lib/format";
import { formatConfig, knownKeys, parseConfig, SUBMIT_PLATFORMS } from "../lib/hardware";
import { usePageTitle } from "../lib/hooks";

const CodeEditor = lazy(() => import("../components/CodeEditor"));

export const DEFAULT_COMMAND = "run.py {system}";
const DEFAULT_CODE = `"""A PyNN script: the command passes the simulator's name as its argument."""
import sys
from importlib import import_module

sim = import_module(f"pyNN.{sys.argv[1]}")
sim.setup(timestep=1.0)
stimulus = sim.Population(10, sim.SpikeSourcePoisson(rate=20.0), label="input")
cells = sim.Population(10, sim.IF_curr_exp(), label="cells")
sim.Projection(stimulus, cells, sim.OneToOneConnector(), sim.StaticSynapse(weight=2.0))
cells.record("spikes")
sim.run(1000.0)
cells.write_data("cells.pkl")
sim.end()
`;

type Source = "editor" | "git" | "archive";
const ARCHIVE = /\.(zip|tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)(\?.*)?$/i;
/** What the file picker offers: the formats POST /code-archives/ takes, by their usual names. */
export const ARCHIVE_ACCEPT = ".zip,.tar,.tar.gz,.tgz,.tar.bz2,.tbz2,.tar.xz,.txz";

// Out of sight but not display:none, so that it stays in the accessibility tree with its label;
// the button is the control one sees and tabs to.
const visuallyHidden = {
  position: "absolute",
  width: 1,
  height: 1,
  overflow: "hidden",
  clip: "rect(0 0 0 0)",
  clipPath: "inset(50%)",
  whiteSpace: "nowrap",
  border: 0,
  padding: 0,
  margin: -1,
} as const;

export function sourceOf(code: string): Source {
  if (!isCodeUrl(code)) return "editor";
  return ARCHIVE.test(code.trim()) ? "archive" : "git";
}

/** What "Resubmit" passes (as router state: code may be large, and it is not for the URL). */
export interface ResubmitState {
  job: Pick<Job, "code" | "command" | "hardware_platform" | "hardware_config" | "tags">;
}

export default function NewJob() {
  const { collab = "" } = useParams();
  usePageTitle(`New job in ${collab}`);
  const navigate = useNavigate();
  const location = useLocation();
  const prefill = (location.state as ResubmitState | null)?.job;

  const initialSource = prefill ? sourceOf(prefill.code) : "editor";
  const [source, setSource] = useState<Source>(initialSource);
  const [code, setCode] = useState(prefill && initialSource === "editor" ? prefill.code : DEFAULT_CODE);
  const [gitUrl, setGitUrl] = useState(prefill && initialSource === "git" ? prefill.code.trim() : "");
  const [archiveUrl, setArchiveUrl] = useState(prefill && initialSource === "archive" ? prefill.code.trim() : "");
  const [command, setCommand] = useState(prefill?.command ?? DEFAULT_COMMAND);
  const [platform, setPlatform] = useState(
    prefill && SUBMIT_PLATFORMS.includes(prefill.hardware_platform) ? prefill.hardware_platform : SUBMIT_PLATFORMS[0],
  );
  const [configText, setConfigText] = useState(formatConfig((prefill?.hardware_config ?? {}) as HardwareConfig));
  const [tagsText, setTagsText] = useState((prefill?.tags ?? []).join(", "));
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [projectsError, setProjectsError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [upload, setUpload] = useState<{ name: string; loaded: number; total: number } | null>(null);
  const [uploaded, setUploaded] = useState<CodeArchive | null>(null);
  const [uploadError, setUploadError] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const uploadAbort = useRef<AbortController | null>(null);

  // Leaving the page stops an upload under way.
  useEffect(() => () => uploadAbort.current?.abort(), []);

  useEffect(() => {
    listProjects({ collab, status: "accepted" })
      .then(setProjects)
      .catch((e: Error) => setProjectsError(e.message));
  }, [collab]);

  const quota = useMemo(() => (projects ? quotaStatus(projects, platform) : null), [projects, platform]);
  const parsed = parseConfig(configText);
  const tags = tagsText.split(",").map((t) => t.trim()).filter(Boolean);
  const badTags = tags.filter((t) => t.length < 2 || t.length > 100);
  const codeValue = source === "editor" ? code : source === "git" ? gitUrl.trim() : archiveUrl.trim();
  const codeProblem =
    !codeValue
      ? source === "editor" ? "Write the code to run." : "Give the URL."
      : source !== "editor" && !isCodeUrl(codeValue)
        ? "Give an http(s) URL."
        : source === "archive" && !ARCHIVE.test(codeValue)
          ? "The URL should end in .zip, .tar, .tar.gz, .tgz, .tar.bz2 or .tar.xz."
          : null;
  const refused = quota?.state === "exhausted";
  const uploading = upload !== null;
  // The summary holds only while the field still gives the uploaded archive's URL.
  const uploadedUrl = uploaded ? codeArchiveUrl(uploaded) : null;
  const showUploaded = uploaded !== null && archiveUrl.trim() === uploadedUrl;
  const canSubmit = !busy && !uploading && !refused && !codeProblem && "config" in parsed && badTags.length === 0 && quota !== null;

  const onPlatform = (value: string) => {
    setPlatform(value);
    // Keep only the keys the new platform knows (others would be refused by its site).
    if ("config" in parsed) {
      const known = new Set(knownKeys(value));
      const kept = Object.fromEntries(Object.entries(parsed.config).filter(([k]) => known.has(k)));
      setConfigText(formatConfig(kept));
    }
  };

  const onFile = async (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    event.target.value = ""; // so that choosing the same file again uploads it again
    if (!file) return;
    const controller = new AbortController();
    uploadAbort.current = controller;
    setUploadError(null);
    setUpload({ name: file.name, loaded: 0, total: file.size });
    try {
      const archive = await uploadCodeArchive(
        collab,
        file,
        (loaded, total) => setUpload({ name: file.name, loaded, total }),
        controller.signal,
      );
      setUploaded(archive);
      setArchiveUrl(codeArchiveUrl(archive));
    } catch (e) {
      if ((e as Error)?.name === "AbortError") return;
      setUploadError((e as Error).message);
    } finally {
      if (uploadAbort.current === controller) {
        uploadAbort.current = null;
        if (!controller.signal.aborted) setUpload(null);
      }
    }
  };

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (!canSubmit || !("config" in parsed)) return;
    setBusy(true);
    setError(null);
    try {
      const job = await submitJob({
        code: codeValue,
        command: command.trim() || null,
        collab,
        hardware_platform: platform,
        hardware_config: Object.keys(parsed.config).length ? parsed.config : null,
        tags: tags.length ? tags : null,
      });
      navigate(`/collabs/${encodeURIComponent(collab)}/jobs/${job.id}`);
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };

  return (
    <Stack spacing={2} component="form" onSubmit={onSubmit} noValidate aria-labelledby="new-job-title">
      <Typography variant="h4" component="h1" id="new-job-title" sx={{ wordBreak: "break-word" }}>
        New job in {collab}
      </Typography>
      {prefill && (
        <Typography color="text.secondary">Prefilled from an earlier job: check and edit before submitting.</Typography>
      )}
      <Paper sx={{ p: 2 }}>
        <Typography variant="h6" component="h2" gutterBottom>
          Code
        </Typography>
        <Tabs value={source} onChange={(_, v: Source) => setSource(v)} aria-label="Where the code comes from" variant="scrollable" allowScrollButtonsMobile>
          <Tab value="editor" label="Code editor" id="tab-editor" aria-controls="panel-editor" />
          <Tab value="git" label="Git repository" id="tab-git" aria-controls="panel-git" />
          <Tab value="archive" label="Archive (zip/tar)" id="tab-archive" aria-controls="panel-archive" />
        </Tabs>
        <Box role="tabpanel" id={`panel-${source}`} aria-labelledby={`tab-${source}`} sx={{ pt: 2 }}>
          {source === "editor" && (
            <Suspense fallback={<Loading label="Loading the code editor" />}>
              <CodeEditor value={code} onChange={setCode} label="Python code of the job" />
            </Suspense>
          )}
          {source === "git" && (
            <TextField
              id="git-url"
              label="Git repository URL"
              placeholder="https://github.com/me/my-model.git"
              value={gitUrl}
              onChange={(e) => setGitUrl(e.target.value)}
              helperText="The site clones it and runs the command in it."
              fullWidth
              type="url"
            />
          )}
          {source === "archive" && (
            <Stack spacing={1.5}>
              <Box sx={{ display: "flex", alignItems: "center", gap: 2, flexWrap: "wrap" }}>
                <input
                  ref={fileInput}
                  id="archive-file"
                  type="file"
                  accept={ARCHIVE_ACCEPT}
                  aria-label="Archive file"
                  aria-describedby="archive-file-help"
                  tabIndex={-1}
                  onChange={onFile}
                  disabled={uploading}
                  style={visuallyHidden}
                />
                <Button variant="outlined" onClick={() => fileInput.current?.click()} disabled={uploading}>
                  Upload an archive
                </Button>
                <Typography variant="body2" color="text.secondary" id="archive-file-help">
                  zip, tar, tar.gz, tar.bz2 or tar.xz; at most 16 MiB
                </Typography>
              </Box>
              {upload && (
                <Box>
                  <Typography variant="body2" sx={{ wordBreak: "break-word" }}>
                    Uploading {upload.name}: {formatBytes(upload.loaded)} of {formatBytes(upload.total)}
                  </Typography>
                  <LinearProgress
                    variant="determinate"
                    value={upload.total > 0 ? Math.min(100, Math.round((upload.loaded / upload.total) * 100)) : 0}
                    aria-label="Upload progress"
                  />
                </Box>
              )}
              {showUploaded && uploaded && (
                <Typography role="status" sx={{ wordBreak: "break-word" }}>
                  Uploaded {uploaded.filename} ({formatBytes(uploaded.size)}, {uploaded.format}, sha256{" "}
                  <Box component="code">{uploaded.sha256.slice(0, 12)}</Box>)
                </Typography>
              )}
              <ErrorAlert error={uploadError} onClose={() => setUploadError(null)} />
              <Typography variant="body2" color="text.secondary">
                or give the URL of an archive the site can download:
              </Typography>
              <TextField
                id="archive-url"
                label="Archive URL"
                placeholder="https://example.org/my-model.zip"
                value={archiveUrl}
                onChange={(e) => setArchiveUrl(e.target.value)}
                helperText="An upload fills this in. The site downloads and unpacks the archive, and runs the command in it."
                fullWidth
                type="url"
              />
            </Stack>
          )}
          {codeProblem && codeValue && <Typography color="error" role="alert" sx={{ mt: 1 }}>{codeProblem}</Typography>}
        </Box>
        <TextField
          id="command"
          label="Command"
          value={command}
          onChange={(e) => setCommand(e.target.value)}
          helperText="{system} is replaced by the platform's PyNN backend name."
          fullWidth
          sx={{ mt: 2 }}
          slotProps={{ htmlInput: { spellCheck: false } }}
        />
      </Paper>
      <Paper sx={{ p: 2 }}>
        <Stack spacing={2}>
          <TextField select id="platform" label="Hardware platform" value={platform} onChange={(e) => onPlatform(e.target.value)} sx={{ maxWidth: 360 }}>
            {SUBMIT_PLATFORMS.map((p) => (
              <MenuItem key={p} value={p}>{p}</MenuItem>
            ))}
          </TextField>
          <HardwareConfigEditor platform={platform} text={configText} onChange={setConfigText} />
          <TextField
            id="tags"
            label="Tags"
            value={tagsText}
            onChange={(e) => setTagsText(e.target.value)}
            helperText={badTags.length ? `Each tag has 2 to 100 characters: ${badTags.join(", ")}` : "Comma-separated"}
            error={badTags.length > 0}
          />
        </Stack>
      </Paper>
      <Paper sx={{ p: 2 }}>
        <Typography variant="h6" component="h2" gutterBottom>
          Quota
        </Typography>
        <ErrorAlert error={projectsError ? `The collab's quotas could not be read: ${projectsError}` : null} />
        {!quota && !projectsError && <Loading label="Loading quotas" />}
        {quota && <QuotaInfo collab={collab} platform={platform} status={quota} />}
      </Paper>
      <ErrorAlert error={error} />
      <Box sx={{ display: "flex", gap: 1, justifyContent: "flex-end", flexWrap: "wrap" }}>
        <Button component={RouterLink} to={`/collabs/${encodeURIComponent(collab)}/jobs`}>
          Cancel
        </Button>
        <Button type="submit" variant="contained" disabled={!canSubmit}>
          {busy ? "Submitting…" : "Submit job"}
        </Button>
      </Box>
    </Stack>
  );
}
