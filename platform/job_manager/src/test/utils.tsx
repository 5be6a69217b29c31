import type { ReactElement } from "react";
import { render } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router-dom";
import { vi } from "vitest";
import { StaticAuthProvider } from "../auth";
import type { Me } from "../api/types";

export const USER: Me = { username: "alice", is_admin: false, identity_mode: "local" };

export interface MockCall {
  url: string;
  init: RequestInit;
}

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;

export function jsonResponse(body: unknown, init: ResponseInit & { headers?: Record<string, string> } = {}) {
  return new Response(JSON.stringify(body), {
    status: init.status ?? 200,
    headers: { "Content-Type": "application/json", ...(init.headers ?? {}) },
  });
}

/** Replaces fetch (unit tests only); returns the calls it saw. */
export function mockFetch(handler: Handler): MockCall[] {
  const calls: MockCall[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.toString() : input.url;
      calls.push({ url, init });
      return handler(url, init);
    }),
  );
  return calls;
}

export function renderAt(element: ReactElement, { path, route, user = USER }: { path: string; route: string; user?: Me | null }) {
  return render(
    <StaticAuthProvider user={user}>
      <MemoryRouter initialEntries={[route]}>
        <Routes>
          <Route path={path} element={element} />
        </Routes>
      </MemoryRouter>
    </StaticAuthProvider>,
  );
}

export interface XhrReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One request seen by mockXhr; a test without a handler answers it with respond() or fail(). */
export interface XhrCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  withCredentials: boolean;
  progress(loaded: number, total: number): void;
  respond(reply: XhrReply): void;
  fail(): void;
}

/**
 * Replaces XMLHttpRequest (unit tests only: jsdom's would try the network); returns the requests
 * it saw. With a handler each request is answered on the next tick; without one the test does.
 */
export function mockXhr(handler?: (call: XhrCall) => XhrReply): XhrCall[] {
  const calls: XhrCall[] = [];
  class FakeXhr {
    status = 0;
    responseText = "";
    withCredentials = false;
    upload: { onprogress: ((event: ProgressEvent) => void) | null } = { onprogress: null };
    onload: (() => void) | null = null;
    onerror: (() => void) | null = null;
    onabort: (() => void) | null = null;
    private method = "";
    private url = "";
    private headers: Record<string, string> = {};
    private replyHeaders: Record<string, string> = {};
    private finished = false;

    open(method: string, url: string) {
      this.method = method;
      this.url = url;
    }
    setRequestHeader(name: string, value: string) {
      this.headers[name] = value;
    }
    getResponseHeader(name: string): string | null {
      const key = Object.keys(this.replyHeaders).find((k) => k.toLowerCase() === name.toLowerCase());
      return key === undefined ? null : this.replyHeaders[key];
    }
    abort() {
      if (this.finished) return;
      this.finished = true;
      this.onabort?.();
    }
    send(body: unknown) {
      const call: XhrCall = {
        method: this.method,
        url: this.url,
        headers: { ...this.headers },
        body,
        withCredentials: this.withCredentials,
        progress: (loaded, total) => {
          this.upload.onprogress?.({ loaded, total, lengthComputable: true } as ProgressEvent);
        },
        respond: ({ status, body: replyBody, headers }) => {
          if (this.finished) return;
          this.finished = true;
          this.status = status;
          this.replyHeaders = { "Content-Type": "application/json", ...(headers ?? {}) };
          this.responseText = typeof replyBody === "string" ? replyBody : JSON.stringify(replyBody ?? null);
          this.onload?.();
        },
        fail: () => {
          if (this.finished) return;
          this.finished = true;
          this.onerror?.();
        },
      };
      calls.push(call);
      if (handler) {
        const reply = handler(call);
        setTimeout(() => call.respond(reply), 0);
      }
    }
  }
  vi.stubGlobal("XMLHttpRequest", FakeXhr);
  return calls;
}
