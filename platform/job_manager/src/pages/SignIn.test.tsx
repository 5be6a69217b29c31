import { describe, expect, it, vi } from "vitest";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router-dom";
import { AuthProvider } from "../auth";
import { App } from "../App";
import { jsonResponse, mockFetch } from "../test/utils";

function renderApp(route: string) {
  return render(
    <MemoryRouter initialEntries={[route]}>
      <AuthProvider>
        <App />
      </AuthProvider>
    </MemoryRouter>,
  );
}

describe("sign-in", () => {
  it("sends a signed-out user to the sign-in page, then back to where they were going", async () => {
    let signedIn = false;
    const calls = mockFetch((url, init) => {
      if (url === "/auth/me") return signedIn ? jsonResponse({ username: "alice", is_admin: false, identity_mode: "local" }) : jsonResponse({ detail: "not signed in" }, { status: 401 });
      if (url === "/auth/config") return jsonResponse({ identity_mode: "local", login_url: null });
      if (url === "/auth/session" && init.method === "POST") {
        const { token } = JSON.parse(init.body as string);
        if (token !== "good") return jsonResponse({ detail: "invalid or expired token" }, { status: 401 });
        signedIn = true;
        return jsonResponse({ username: "alice", is_admin: false, identity_mode: "local" });
      }
      if (url === "/") return jsonResponse({ about: "", version: "3", status: "read-only: upgrading the database", links: {}, authentication: {} });
      if (url === "/collabs/") return jsonResponse(["lab"]);
      return jsonResponse([]);
    });
    renderApp("/");
    const field = await screen.findByLabelText(/API token/);
    expect(await screen.findByText(/read-only for maintenance/)).toBeInTheDocument();
    expect(document.title).toContain("Sign in");

    await userEvent.type(field, "bad");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("invalid or expired token")).toBeInTheDocument();

    await userEvent.clear(field);
    await userEvent.type(field, "good");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("link", { name: /lab/ })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Sign out" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Skip to main content" })).toHaveAttribute("href", "#main");
    const post = calls.find((c) => c.url === "/auth/session")!;
    expect((post.init.headers as Record<string, string>)["X-NMPI-CSRF"]).toBe("1");
    expect(window.localStorage.length).toBe(0);
    expect(window.sessionStorage.length).toBe(0);
  });

  it("in OIDC mode, signs in by a full-page navigation with next", async () => {
    mockFetch((url) => {
      if (url === "/auth/me") return jsonResponse({ detail: "no" }, { status: 401 });
      if (url === "/auth/config") return jsonResponse({ identity_mode: "oidc", login_url: "/auth/login" });
      return jsonResponse({ about: "", version: "3", status: "ok", links: {}, authentication: {} });
    });
    const assign = vi.fn();
    vi.stubGlobal("location", { ...window.location, assign });
    renderApp("/collabs/lab/jobs");
    await userEvent.click(await screen.findByRole("button", { name: /Sign in with/ }));
    await waitFor(() => expect(assign).toHaveBeenCalledWith("/auth/login?next=%2Fapp%2Fcollabs%2Flab%2Fjobs"));
  });
});
