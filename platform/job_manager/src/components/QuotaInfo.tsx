import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import LinearProgress from "@mui/material/LinearProgress";
import Typography from "@mui/material/Typography";
import type { Project, Quota } from "../api/types";
import { formatNumber } from "../lib/format";
import { usageUnits } from "../lib/hardware";

export interface QuotaStatus {
  /** "ok": some left; "exhausted": quotas exist, none left; "none": no quota for the platform yet. */
  state: "ok" | "exhausted" | "none";
  quotas: Quota[];
  remaining: number;
  limit: number;
  usage: number;
  units: string;
}

/** The quotas of the collab's accepted projects on `platform`, and what remains of them. */
export function quotaStatus(projects: Project[], platform: string): QuotaStatus {
  const quotas = projects
    .filter((p) => p.status === "accepted")
    .flatMap((p) => p.quotas)
    .filter((q) => q.platform === platform);
  const limit = quotas.reduce((s, q) => s + q.limit, 0);
  const usage = quotas.reduce((s, q) => s + q.usage, 0);
  const remaining = quotas.reduce((s, q) => s + Math.max(0, q.limit - q.usage), 0);
  const units = quotas[0]?.units ?? usageUnits(platform);
  const state = quotas.length === 0 ? "none" : remaining > 0 ? "ok" : "exhausted";
  return { state, quotas, remaining, limit, usage, units };
}

export function QuotaBar({ quota }: { quota: Pick<Quota, "limit" | "usage" | "units" | "platform"> }) {
  const percent = quota.limit > 0 ? Math.min(100, (quota.usage / quota.limit) * 100) : 100;
  const label = `${quota.platform}: ${formatNumber(quota.usage)} of ${formatNumber(quota.limit)} ${quota.units} used`;
  return (
    <Box sx={{ my: 1 }}>
      <Typography variant="body2" id={undefined}>
        {label} ({formatNumber(Math.max(0, quota.limit - quota.usage))} left)
      </Typography>
      <LinearProgress
        variant="determinate"
        value={percent}
        color={percent >= 100 ? "error" : percent >= 80 ? "warning" : "primary"}
        aria-label={label}
        sx={{ height: 8, borderRadius: 1 }}
      />
    </Box>
  );
}

export function QuotaInfo({ collab, platform, status }: { collab: string; platform: string; status: QuotaStatus }) {
  if (status.state === "none") {
    return (
      <Alert severity="info" role="status">
        Collab {collab} has no quota for {platform} yet. The service grants a small test quota on a
        collab's first submission to a platform; for more, request resources on the Projects page.
      </Alert>
    );
  }
  if (status.state === "exhausted") {
    return (
      <Alert severity="error" role="alert">
        Collab {collab} has no {platform} quota left ({formatNumber(status.usage)} of{" "}
        {formatNumber(status.limit)} {status.units} used), so the job cannot be submitted. Ask for
        more resources with a resource request on the Projects page.
      </Alert>
    );
  }
  return (
    <Box role="status">
      <Typography>
        This job will be charged to collab {collab}'s {platform} quota:{" "}
        <strong>
          {formatNumber(status.remaining)} {status.units}
        </strong>{" "}
        left.
      </Typography>
      <QuotaBar quota={{ platform, limit: status.limit, usage: status.usage, units: status.units }} />
    </Box>
  );
}
