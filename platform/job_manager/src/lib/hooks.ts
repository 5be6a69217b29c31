import { useEffect, useRef, useState } from "react";

const APP_NAME = "Job Manager";

/** Sets the document's title (WCAG 2.4.2) for the page shown. */
export function usePageTitle(title: string) {
  useEffect(() => {
    document.title = title ? `${title} · ${APP_NAME}` : APP_NAME;
  }, [title]);
}

/** Whether the tab is visible (document.visibilityState), updated as it changes. */
export function useDocumentVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState !== "hidden");
  useEffect(() => {
    const update = () => setVisible(document.visibilityState !== "hidden");
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
  return visible;
}

/**
 * Calls `tick` every `ms` while `enabled` and the tab is visible (and once as soon as the tab
 * becomes visible again). A tick does not start while the previous one is still running.
 */
export function usePolling(tick: () => Promise<unknown> | void, ms: number, enabled: boolean) {
  const visible = useDocumentVisible();
  const saved = useRef(tick);
  saved.current = tick;
  useEffect(() => {
    if (!enabled || !visible) return undefined;
    let running = false;
    let stopped = false;
    const run = async () => {
      if (running || stopped) return;
      running = true;
      try {
        await saved.current();
      } catch {
        // a failed poll is retried at the next tick
      } finally {
        running = false;
      }
    };
    const id = window.setInterval(run, ms);
    return () => {
      stopped = true;
      window.clearInterval(id);
    };
  }, [ms, enabled, visible]);
  // When the tab comes back, refresh at once rather than at the next tick.
  const wasVisible = useRef(visible);
  useEffect(() => {
    if (visible && !wasVisible.current && enabled) void Promise.resolve(saved.current()).catch(() => undefined);
    wasVisible.current = visible;
  }, [visible, enabled]);
}
