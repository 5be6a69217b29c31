import { useState } from "react";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Stack from "@mui/material/Stack";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { CONFIG_FIELDS, fieldText, fieldValue, formatConfig, parseConfig, unknownKeys } from "../lib/hardware";

interface Props {
  platform: string;
  /** The configuration as JSON text: the one source of truth, which the form reads and writes. */
  text: string;
  onChange: (text: string) => void;
}

/**
 * The hardware configuration as a form (the keys the platform's site accepts) and as raw JSON,
 * kept in sync: the form is derived from the JSON text, and each form edit rewrites it.
 */
export function HardwareConfigEditor({ platform, text, onChange }: Props) {
  const fields = CONFIG_FIELDS[platform] ?? [];
  const parsed = parseConfig(text);
  // What a field shows while being edited (so that "a\n" can be typed in a one-item-a-line field).
  const [drafts, setDrafts] = useState<Record<string, string>>({});
  const config = "config" in parsed ? parsed.config : null;
  const unknown = config ? unknownKeys(platform, config) : [];

  const setField = (key: string, raw: string) => {
    if (!config) return;
    const field = fields.find((f) => f.key === key)!;
    setDrafts((d) => ({ ...d, [key]: raw }));
    const value = fieldValue(field, raw);
    const updated = { ...config };
    if (value === undefined) delete updated[key];
    else updated[key] = value;
    onChange(formatConfig(updated));
  };

  return (
    <Stack spacing={2} component="fieldset" sx={{ border: 0, p: 0, m: 0, minWidth: 0 }}>
      <Typography component="legend" variant="h6">
        Hardware configuration
      </Typography>
      {fields.length === 0 && (
        <Typography color="text.secondary">No form for {platform}: edit the JSON below.</Typography>
      )}
      <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: { xs: "1fr", md: "1fr 1fr" } }}>
        {fields.map((field) => (
          <TextField
            key={`${platform}-${field.key}`}
            id={`hw-${field.key}`}
            label={field.label}
            helperText={`${field.key}: ${field.help}`}
            value={drafts[field.key] ?? fieldText(field, config?.[field.key])}
            onChange={(e) => setField(field.key, e.target.value)}
            onBlur={() => setDrafts((d) => { const rest = { ...d }; delete rest[field.key]; return rest; })}
            disabled={!config}
            multiline={field.kind === "lines"}
            minRows={field.kind === "lines" ? 2 : undefined}
            inputMode={field.kind === "integer" ? "numeric" : undefined}
            size="small"
          />
        ))}
      </Box>
      <TextField
        id="hw-json"
        label="Hardware configuration (JSON)"
        value={text}
        onChange={(e) => { setDrafts({}); onChange(e.target.value); }}
        multiline
        minRows={4}
        error={"error" in parsed}
        helperText={"error" in parsed ? parsed.error : "Kept in sync with the form above."}
        slotProps={{ htmlInput: { spellCheck: false, style: { fontFamily: "ui-monospace, Menlo, Consolas, monospace" } } }}
      />
      {unknown.length > 0 && (
        <Alert severity="warning">
          {platform} does not know {unknown.length === 1 ? "the key" : "the keys"} {unknown.join(", ")}: its
          site refuses a job with an unknown key (most likely a typo).
        </Alert>
      )}
    </Stack>
  );
}
