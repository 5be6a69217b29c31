import { lazy, Suspense, type ReactNode } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router-dom";
import { Loading } from "./components/Loading";
import { useAuth } from "./auth";
import { Layout } from "./components/Layout";

// Every page is its own chunk: the first page loads only the shell and the page it shows.
const SignIn = lazy(() => import("./pages/SignIn"));
const Collabs = lazy(() => import("./pages/Collabs"));
const Jobs = lazy(() => import("./pages/Jobs"));
const NewJob = lazy(() => import("./pages/NewJob"));
const JobDetail = lazy(() => import("./pages/JobDetail"));
const Projects = lazy(() => import("./pages/Projects"));
const NotFound = lazy(() => import("./pages/NotFound"));

function RequireAuth({ children }: { children: ReactNode }) {
  const { user } = useAuth();
  const location = useLocation();
  if (user === undefined) return <Loading label="Checking your session" />;
  if (user === null) {
    const next = location.pathname + location.search;
    return <Navigate to={`/signin?next=${encodeURIComponent(next)}`} replace />;
  }
  return <>{children}</>;
}

export function App() {
  return (
    <Layout>
      <Suspense fallback={<Loading />}>
        <Routes>
          <Route path="/signin" element={<SignIn />} />
          <Route path="/" element={<RequireAuth><Collabs /></RequireAuth>} />
          <Route path="/collabs/:collab/jobs" element={<RequireAuth><Jobs /></RequireAuth>} />
          <Route path="/collabs/:collab/jobs/new" element={<RequireAuth><NewJob /></RequireAuth>} />
          <Route path="/collabs/:collab/jobs/:id" element={<RequireAuth><JobDetail /></RequireAuth>} />
          <Route path="/projects" element={<RequireAuth><Projects /></RequireAuth>} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </Suspense>
    </Layout>
  );
}
