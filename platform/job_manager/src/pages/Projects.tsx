import { useCallback, useEffect, useState, type FormEvent } from "react";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Checkbox from "@mui/material/Checkbox";
import Chip from "@mui/material/Chip";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import FormControlLabel from "@mui/material/FormControlLabel";
import MenuItem from "@mui/material/MenuItem";
import Paper from "@mui/material/Paper";
import Stack from "@mui/material/Stack";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import * as api from "../api/client";
import type { Project, ProjectStatus, Quota } from "../api/types";
import { useAuth } from "../auth";
import { ErrorAlert } from "../components/ErrorAlert";
import { Loading } from "../components/Loading";
import { QuotaBar } from "../components/QuotaInfo";
import { ALL_PLATFORMS, usageUnits } from "../lib/hardware";
import { usePageTitle } from "../lib/hooks";

const STATUS_COLOURS: Record<ProjectStatus, "default" | "info" | "success" | "error"> = {
  "in preparation": "default",
  "under review": "info",
  accepted: "success",
  rejected: "error",
};

interface Draft {
  id?: string;
  collab: string;
  title: string;
  abstract: string;
  description: string;
  submit: boolean;
}

function ProjectDialog({ draft, collabs, onClose, onSaved }: { draft: Draft; collabs: string[]; onClose: () => void; onSaved: () => void }) {
  const [value, setValue] = useState(draft);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const editing = Boolean(draft.id);
  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (!value.title.trim() || !value.collab) {
      setError("A collab and a title are needed.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      if (draft.id) {
        await api.updateProject(draft.id, {
          title: value.title.trim(),
          abstract: value.abstract,
          description: value.description,
          ...(value.submit ? { status: "under review" as const } : {}),
        });
      } else {
        await api.createProject({
          collab: value.collab,
          title: value.title.trim(),
          abstract: value.abstract,
          description: value.description,
          status: value.submit ? "under review" : "in preparation",
        });
      }
      onSaved();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };
  return (
    <Dialog open onClose={onClose} fullWidth maxWidth="md" aria-labelledby="project-dialog-title">
      <form onSubmit={onSubmit} noValidate>
        <DialogTitle id="project-dialog-title">{editing ? "Edit resource request" : "New resource request"}</DialogTitle>
        <DialogContent>
          <Stack spacing={2} sx={{ pt: 1 }}>
            <TextField select id="project-collab" label="Collab" value={value.collab} onChange={(e) => setValue({ ...value, collab: e.target.value })} disabled={editing} required>
              {(collabs.includes(value.collab) || !value.collab ? collabs : [value.collab, ...collabs]).map((c) => (
                <MenuItem key={c} value={c}>{c}</MenuItem>
              ))}
            </TextField>
            <TextField id="project-title" label="Title" value={value.title} onChange={(e) => setValue({ ...value, title: e.target.value })} required />
            <TextField id="project-abstract" label="Abstract" value={value.abstract} onChange={(e) => setValue({ ...value, abstract: e.target.value })} multiline minRows={3} />
            <TextField id="project-description" label="Description" value={value.description} onChange={(e) => setValue({ ...value, description: e.target.value })} multiline minRows={4} helperText="What you will run, on which platforms, and how much you need." />
            <FormControlLabel
              control={<Checkbox checked={value.submit} onChange={(e) => setValue({ ...value, submit: e.target.checked })} />}
              label="Submit for review now (it cannot be edited afterwards)"
            />
            <ErrorAlert error={error} />
          </Stack>
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="contained" disabled={busy}>{value.submit ? "Save and submit" : "Save"}</Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

function AdminQuotas({ project, onChanged }: { project: Project; onChanged: () => void }) {
  const [platform, setPlatform] = useState("SpiNNaker");
  const [limit, setLimit] = useState("");
  const [limits, setLimits] = useState<Record<number, string>>({});
  const [error, setError] = useState<string | null>(null);
  const run = async (work: () => Promise<unknown>) => {
    setError(null);
    try {
      await work();
      onChanged();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const setQuota = (q: Quota) => {
    const value = Number(limits[q.id]);
    if (!Number.isFinite(value) || value < 0) return setError("The limit must be a number ≥ 0.");
    void run(() => api.updateQuota(project.id, q.id, { limit: value, usage: q.usage }));
  };
  return (
    <Box sx={{ mt: 1, p: 1, border: 1, borderColor: "divider", borderRadius: 1 }}>
      <Typography variant="subtitle2" component="h4">Administration: quotas</Typography>
      {project.quotas.map((q) => (
        <Box key={q.id} component="form" onSubmit={(e: FormEvent) => { e.preventDefault(); setQuota(q); }} sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap", mt: 1 }}>
          <TextField size="small" id={`limit-${q.id}`} label={`${q.platform} limit (${q.units})`} value={limits[q.id] ?? String(q.limit)} onChange={(e) => setLimits({ ...limits, [q.id]: e.target.value })} inputMode="decimal" />
          <Button type="submit" size="small">Set limit</Button>
        </Box>
      ))}
      <Box component="form" onSubmit={(e: FormEvent) => {
        e.preventDefault();
        const value = Number(limit);
        if (!limit || !Number.isFinite(value) || value < 0) return setError("The limit must be a number ≥ 0.");
        void run(async () => { await api.addQuota(project.id, { platform, units: usageUnits(platform), limit: value }); setLimit(""); });
      }} sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap", mt: 1 }}>
        <TextField select size="small" id={`quota-platform-${project.id}`} label="Platform" value={platform} onChange={(e) => setPlatform(e.target.value)} sx={{ minWidth: 160 }}>
          {ALL_PLATFORMS.map((p) => <MenuItem key={p} value={p}>{p}</MenuItem>)}
        </TextField>
        <TextField size="small" id={`quota-limit-${project.id}`} label={`Limit (${usageUnits(platform)})`} value={limit} onChange={(e) => setLimit(e.target.value)} inputMode="decimal" />
        <Button type="submit" size="small" variant="outlined">Add quota</Button>
      </Box>
      <ErrorAlert error={error} />
    </Box>
  );
}

function ProjectCard({ project, isAdmin, onEdit, onChanged }: { project: Project; isAdmin: boolean; onEdit: () => void; onChanged: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
      onChanged();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const inPreparation = project.status === "in preparation";
  const titleId = `project-${project.id}`;
  return (
    <Paper component="article" aria-labelledby={titleId} sx={{ p: 2 }}>
      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, alignItems: "center" }}>
        <Typography variant="h6" component="h2" id={titleId} sx={{ flexGrow: 1, wordBreak: "break-word" }}>{project.title}</Typography>
        <Chip label={project.status} color={STATUS_COLOURS[project.status]} size="small" />
      </Box>
      <Typography variant="body2" color="text.secondary">
        Collab {project.collab} · owner {project.owner}
        {project.submission_date ? ` · submitted ${project.submission_date}` : ""}
        {project.decision_date ? ` · ${project.status === "rejected" ? "rejected" : "decided"} ${project.decision_date}` : ""}
      </Typography>
      {project.abstract && <Typography sx={{ mt: 1, whiteSpace: "pre-wrap" }}>{project.abstract}</Typography>}
      {project.quotas.length > 0 && (
        <Box sx={{ mt: 1 }} aria-label={`Quotas of ${project.title}`} role="group">
          {project.quotas.map((q) => <QuotaBar key={q.id} quota={q} />)}
        </Box>
      )}
      {project.status === "accepted" && project.quotas.length === 0 && (
        <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>Accepted; no quota set yet.</Typography>
      )}
      <ErrorAlert error={error} />
      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, mt: 1 }}>
        {inPreparation && (
          <>
            <Button size="small" onClick={onEdit} disabled={busy}>Edit</Button>
            <Button size="small" variant="outlined" disabled={busy} onClick={() => void run(() => api.updateProject(project.id, { status: "under review" }))}>Submit for review</Button>
            <Button size="small" color="error" disabled={busy} onClick={() => { if (window.confirm(`Delete the resource request "${project.title}"?`)) void run(() => api.deleteProject(project.id)); }}>Delete</Button>
          </>
        )}
        {isAdmin && project.status === "under review" && (
          <>
            <Button size="small" color="success" variant="contained" disabled={busy} onClick={() => void run(() => api.updateProject(project.id, { status: "accepted" }, true))}>Accept</Button>
            <Button size="small" color="error" variant="outlined" disabled={busy} onClick={() => void run(() => api.updateProject(project.id, { status: "rejected" }, true))}>Reject</Button>
          </>
        )}
      </Box>
      {isAdmin && project.status === "accepted" && <AdminQuotas project={project} onChanged={onChanged} />}
    </Paper>
  );
}

export default function Projects() {
  usePageTitle("Resource requests");
  const { user } = useAuth();
  const isAdmin = Boolean(user?.is_admin);
  const [collabs, setCollabs] = useState<string[]>([]);
  const [collab, setCollab] = useState("");
  const [status, setStatus] = useState("");
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [dialog, setDialog] = useState<Draft | null>(null);

  const load = useCallback(async () => {
    try {
      setProjects(await api.listProjects({ collab: collab || undefined, status: status || undefined }));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [collab, status]);

  useEffect(() => {
    api.listCollabs().then(setCollabs).catch(() => setCollabs([]));
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  return (
    <Stack spacing={2}>
      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 2, alignItems: "center" }}>
        <Typography variant="h4" component="h1" sx={{ flexGrow: 1 }}>Resource requests</Typography>
        <Button variant="contained" disabled={collabs.length === 0} onClick={() => setDialog({ collab: collab || collabs[0] || "", title: "", abstract: "", description: "", submit: false })}>
          New resource request
        </Button>
      </Box>
      <Typography color="text.secondary">
        A collab's accepted requests carry its quotas on each platform.{isAdmin ? " As an administrator you see every request and decide on those under review." : ""}
      </Typography>
      <Box sx={{ display: "flex", gap: 2, flexWrap: "wrap" }}>
        <TextField select size="small" id="projects-collab" label="Collab" value={collab} onChange={(e) => setCollab(e.target.value)} sx={{ minWidth: 200 }}>
          <MenuItem value="">All I can see</MenuItem>
          {collabs.map((c) => <MenuItem key={c} value={c}>{c}</MenuItem>)}
        </TextField>
        <TextField select size="small" id="projects-status" label="Status" value={status} onChange={(e) => setStatus(e.target.value)} sx={{ minWidth: 200 }}>
          <MenuItem value="">Any</MenuItem>
          {(Object.keys(STATUS_COLOURS) as ProjectStatus[]).map((s) => <MenuItem key={s} value={s}>{s}</MenuItem>)}
        </TextField>
      </Box>
      <ErrorAlert error={error} />
      {!projects && !error && <Loading label="Loading resource requests" />}
      {projects && projects.length === 0 && <Typography>No resource requests.</Typography>}
      {projects?.map((project) => (
        <ProjectCard
          key={project.id}
          project={project}
          isAdmin={isAdmin}
          onChanged={() => void load()}
          onEdit={() => setDialog({ id: project.id, collab: project.collab, title: project.title, abstract: project.abstract, description: project.description, submit: false })}
        />
      ))}
      {dialog && (
        <ProjectDialog
          draft={dialog}
          collabs={collabs}
          onClose={() => setDialog(null)}
          onSaved={() => {
            setDialog(null);
            void load();
          }}
        />
      )}
    </Stack>
  );
}
