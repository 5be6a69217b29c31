import Alert from "@mui/material/Alert";

export function ErrorAlert({ error, onClose }: { error: string | null | undefined; onClose?: () => void }) {
  if (!error) return null;
  return (
    <Alert severity="error" role="alert" onClose={onClose} sx={{ my: 1, whiteSpace: "pre-wrap", wordBreak: "break-word" }}>
      {error}
    </Alert>
  );
}
