import { useEffect, useState } from "react";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Link from "@mui/material/Link";
import Stack from "@mui/material/Stack";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableContainer from "@mui/material/TableContainer";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Typography from "@mui/material/Typography";
import { fetchSpikes, fetchTextPreview, PREVIEW_LIMIT } from "../api/client";
import type { DataItem, SpikeFile } from "../api/types";
import { fileName, formatBytes } from "../lib/format";
import { ErrorAlert } from "./ErrorAlert";
import { Loading } from "./Loading";
import { SpikeRaster } from "./SpikeRaster";

export type PreviewKind = "spikes" | "image" | "text" | null;

const TEXT_EXT = /\.(txt|log|out|err|csv|tsv|json|py|md|rst|yaml|yml|ini|cfg|xml|html?|dat)$/i;
const IMAGE_EXT = /\.(png|jpe?g|gif|svg|webp)$/i;

export function previewKind(item: DataItem): PreviewKind {
  const name = fileName(item).toLowerCase();
  const type = (item.content_type ?? "").toLowerCase();
  if (name.endsWith(".spikes.json")) return "spikes";
  if (type.startsWith("image/") || IMAGE_EXT.test(name)) return "image";
  if (type.startsWith("text/") || type === "application/json" || TEXT_EXT.test(name)) return "text";
  return null;
}

function SpikesPreview({ url }: { url: string }) {
  const [data, setData] = useState<SpikeFile | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    fetchSpikes(url, controller.signal)
      .then(setData)
      .catch((e: Error) => e.name !== "AbortError" && setError(e.message));
    return () => controller.abort();
  }, [url]);
  if (error) return <ErrorAlert error={error} />;
  if (!data) return <Loading label="Loading spikes" />;
  return <SpikeRaster data={data} />;
}

function TextPreview({ url }: { url: string }) {
  const [text, setText] = useState<{ text: string; truncated: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    fetchTextPreview(url, PREVIEW_LIMIT, controller.signal)
      .then(setText)
      .catch((e: Error) => e.name !== "AbortError" && setError(e.message));
    return () => controller.abort();
  }, [url]);
  if (error) return <ErrorAlert error={error} />;
  if (!text) return <Loading label="Loading preview" />;
  return (
    <>
      <Box component="pre" tabIndex={0} aria-label="File preview" sx={{ m: 0, p: 1, maxHeight: 400, overflow: "auto", bgcolor: "grey.100", fontSize: 13, whiteSpace: "pre-wrap", wordBreak: "break-word" }}>
        {text.text}
      </Box>
      {text.truncated && <Typography variant="body2" color="text.secondary">Only the first {formatBytes(PREVIEW_LIMIT)} are shown: download the file for the rest.</Typography>}
    </>
  );
}

function Preview({ item, kind }: { item: DataItem; kind: PreviewKind }) {
  if (kind === "spikes") return <SpikesPreview url={item.url} />;
  if (kind === "image") return <Box component="img" src={item.url} alt={`Output image ${fileName(item)}`} sx={{ maxWidth: "100%", height: "auto" }} />;
  if (kind === "text") return <TextPreview url={item.url} />;
  return null;
}

/** Output files, with previews; spike rasters open by themselves (the first few). */
export function OutputFiles({ files }: { files: DataItem[] }) {
  const autoOpen = files.filter((f) => previewKind(f) === "spikes").slice(0, 3).map((f) => f.url);
  const [open, setOpen] = useState<Set<string>>(() => new Set(autoOpen));
  if (files.length === 0) return <Typography color="text.secondary">No output files.</Typography>;
  const toggle = (url: string) =>
    setOpen((o) => {
      const next = new Set(o);
      if (next.has(url)) next.delete(url);
      else next.add(url);
      return next;
    });
  return (
    <Stack spacing={2}>
      <TableContainer sx={{ overflowX: "auto" }}>
        <Table size="small" aria-label="Output files">
          <TableHead>
            <TableRow>
              <TableCell scope="col">Name</TableCell>
              <TableCell scope="col" align="right">Size</TableCell>
              <TableCell scope="col">Preview</TableCell>
            </TableRow>
          </TableHead>
          <TableBody>
            {files.map((item) => {
              const name = fileName(item);
              const kind = previewKind(item);
              return (
                <TableRow key={item.url}>
                  <TableCell sx={{ wordBreak: "break-all" }}>
                    <Link href={item.url} download={name.split("/").pop()} rel="noopener noreferrer">
                      {name}
                    </Link>
                  </TableCell>
                  <TableCell align="right" sx={{ whiteSpace: "nowrap" }}>{formatBytes(item.size)}</TableCell>
                  <TableCell>
                    {kind && (
                      <Button size="small" onClick={() => toggle(item.url)} aria-expanded={open.has(item.url)} aria-label={`${open.has(item.url) ? "Hide" : "Show"} preview of ${name}`}>
                        {open.has(item.url) ? "Hide" : kind === "spikes" ? "Raster" : "Preview"}
                      </Button>
                    )}
                  </TableCell>
                </TableRow>
              );
            })}
          </TableBody>
        </Table>
      </TableContainer>
      {files.filter((f) => open.has(f.url)).map((item) => (
        <Box key={item.url} component="section" aria-label={`Preview of ${fileName(item)}`}>
          <Typography variant="subtitle1" component="h3" sx={{ wordBreak: "break-all" }}>{fileName(item)}</Typography>
          <Preview item={item} kind={previewKind(item)} />
        </Box>
      ))}
    </Stack>
  );
}
