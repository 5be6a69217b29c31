import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import * as api from "./api/client";
import type { Me } from "./api/types";

interface AuthState {
  /** undefined while finding out, null when not signed in. */
  user: Me | null | undefined;
  /** Why finding out failed (the service could not be reached), if it did. */
  error: string | null;
  signIn: (token: string) => Promise<Me>;
  signOut: () => Promise<void>;
  refresh: () => Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<Me | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  const refresh = useCallback(async () => {
    try {
      setUser(await api.getMe());
      setError(null);
    } catch (e) {
      setUser(null);
      setError((e as Error).message);
    }
  }, []);

  useEffect(() => {
    void refresh();
    const expired = () => setUser(null);
    window.addEventListener(api.UNAUTHORIZED_EVENT, expired);
    return () => window.removeEventListener(api.UNAUTHORIZED_EVENT, expired);
  }, [refresh]);

  const signIn = useCallback(async (token: string) => {
    const me = await api.signIn(token);
    setUser(me);
    setError(null);
    return me;
  }, []);

  const signOut = useCallback(async () => {
    try {
      await api.signOut();
    } finally {
      setUser(null);
    }
  }, []);

  const value = useMemo(() => ({ user, error, signIn, signOut, refresh }), [user, error, signIn, signOut, refresh]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}

/** For tests and previews: a fixed user. */
export function StaticAuthProvider({ user, children }: { user: Me | null; children: ReactNode }) {
  const value = useMemo<AuthState>(
    () => ({
      user,
      error: null,
      signIn: async () => user as Me,
      signOut: async () => undefined,
      refresh: async () => undefined,
    }),
    [user],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
