import { useEffect, useState } from "react";
import { Link as RouterLink } from "react-router-dom";
import Button from "@mui/material/Button";
import List from "@mui/material/List";
import ListItem from "@mui/material/ListItem";
import ListItemButton from "@mui/material/ListItemButton";
import ListItemText from "@mui/material/ListItemText";
import Paper from "@mui/material/Paper";
import Stack from "@mui/material/Stack";
import Typography from "@mui/material/Typography";
import { listCollabs } from "../api/client";
import { ErrorAlert } from "../components/ErrorAlert";
import { Loading } from "../components/Loading";
import { usePageTitle } from "../lib/hooks";

export default function Collabs() {
  usePageTitle("Your collabs");
  const [collabs, setCollabs] = useState<string[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    listCollabs()
      .then((c) => setCollabs([...c].sort((a, b) => a.localeCompare(b))))
      .catch((e: Error) => setError(e.message));
  }, []);

  return (
    <Stack spacing={2}>
      <Typography variant="h4" component="h1">
        Your collabs
      </Typography>
      <Typography color="text.secondary">
        The collabs where you may submit jobs (editor or administrator role).
      </Typography>
      <ErrorAlert error={error} />
      {!collabs && !error && <Loading label="Loading collabs" />}
      {collabs && collabs.length === 0 && (
        <Typography>
          You are not an editor of any collab yet. Ask a collab administrator to add you.
        </Typography>
      )}
      {collabs && collabs.length > 0 && (
        <Paper>
          <List aria-label="Collabs">
            {collabs.map((collab) => (
              <ListItem key={collab} disablePadding secondaryAction={
                <Button component={RouterLink} to={`/collabs/${encodeURIComponent(collab)}/jobs/new`} size="small" aria-label={`New job in ${collab}`}>
                  New job
                </Button>
              }>
                <ListItemButton component={RouterLink} to={`/collabs/${encodeURIComponent(collab)}/jobs`}>
                  <ListItemText primary={collab} secondary="View jobs" />
                </ListItemButton>
              </ListItem>
            ))}
          </List>
        </Paper>
      )}
    </Stack>
  );
}
