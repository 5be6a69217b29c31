import { useEffect, useState, type FormEvent } from "react";
import { Navigate, useSearchParams } from "react-router-dom";
import Button from "@mui/material/Button";
import Paper from "@mui/material/Paper";
import Stack from "@mui/material/Stack";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { getAuthConfig, oidcLoginUrl } from "../api/client";
import type { AuthConfig } from "../api/types";
import { useAuth } from "../auth";
import { ErrorAlert } from "../components/ErrorAlert";
import { Loading } from "../components/Loading";
import { usePageTitle } from "../lib/hooks";

/** Only paths inside the app: never send the user elsewhere after signing in. */
function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/signin")) return "/";
  return next;
}

export default function SignIn() {
  usePageTitle("Sign in");
  const { user, signIn, error: sessionError } = useAuth();
  const [params] = useSearchParams();
  const next = safeNext(params.get("next"));
  const [config, setConfig] = useState<AuthConfig | null>(null);
  const [configError, setConfigError] = useState<string | null>(null);
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    getAuthConfig()
      .then(setConfig)
      .catch((e: Error) => {
        // Without the config, offer the token form (local mode) and say why.
        setConfig({ identity_mode: "local", login_url: null });
        setConfigError(e.message);
      });
  }, []);

  if (user) return <Navigate to={next} replace />;
  if (!config) return <Loading label="Loading sign-in options" />;

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (!token.trim()) {
      setError("Enter your API token.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await signIn(token.trim());
      setToken(""); // not kept anywhere once exchanged for the session cookie
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const oidc = config.identity_mode === "oidc" && config.login_url;
  return (
    <Paper sx={{ maxWidth: 480, mx: "auto", p: { xs: 2, sm: 4 } }}>
      <Stack spacing={2}>
        <Typography variant="h4" component="h1">
          Sign in
        </Typography>
        <ErrorAlert error={sessionError && !configError ? sessionError : null} />
        <ErrorAlert error={configError ? `Sign-in options could not be read: ${configError}` : null} />
        {oidc ? (
          <>
            <Typography>Sign in with your institution's account.</Typography>
            <Button
              variant="contained"
              size="large"
              onClick={() => {
                window.location.assign(oidcLoginUrl(config.login_url as string, `/app${next === "/" ? "/" : next}`));
              }}
            >
              Sign in with EBRAINS / OIDC
            </Button>
          </>
        ) : (
          <form onSubmit={onSubmit} noValidate>
            <Stack spacing={2}>
              <Typography>
                Paste the API token that <code>nmpi-job-queue token</code> (the service's command line)
                issued to you. It is exchanged for a session cookie and not stored by this page.
              </Typography>
              <TextField
                id="token"
                label="API token"
                type="password"
                autoComplete="off"
                value={token}
                onChange={(e) => setToken(e.target.value)}
                required
                fullWidth
                error={Boolean(error)}
              />
              <ErrorAlert error={error} />
              <Button type="submit" variant="contained" disabled={busy}>
                {busy ? "Signing in…" : "Sign in"}
              </Button>
            </Stack>
          </form>
        )}
      </Stack>
    </Paper>
  );
}
