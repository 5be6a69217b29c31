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
