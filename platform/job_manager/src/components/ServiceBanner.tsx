import { useCallback, useEffect, useState } from "react";
import Alert from "@mui/material/Alert";
import { getServerInfo, serviceState, type ServiceState } from "../api/client";
import { usePolling } from "../lib/hooks";

/** A banner while the service is down or read-only (GET / says so in `status`). */
export function ServiceBanner() {
  const [state, setState] = useState<ServiceState | null>(null);
  const load = useCallback(async () => {
    try {
      setState(serviceState(await getServerInfo()));
    } catch {
      setState(null);
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);
  usePolling(load, 60_000, true);

  if (!state || state.state === "ok") return null;
  const message = state.message ? ` ${state.message}` : "";
  if (state.state === "down") {
    return (
      <Alert severity="error" variant="filled" square role="alert">
        The service is down for maintenance: jobs cannot be listed or submitted.{message}
      </Alert>
    );
  }
  if (state.state === "read-only") {
    return (
      <Alert severity="warning" variant="filled" square role="alert">
        The service is read-only for maintenance: you can browse, but not submit or change jobs or
        resource requests.{message}
      </Alert>
    );
  }
  return (
    <Alert severity="info" square role="status">
      Service status: {state.state}.{message}
    </Alert>
  );
}
