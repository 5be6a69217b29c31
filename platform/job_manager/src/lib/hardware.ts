// Hardware platforms and the hardware_config keys their sites accept.
//
// The keys are those of platform/emulators/src/nmpi_emulator/hardware_config.py (KNOWN_KEYS),
// which refuses any other key: a typo there would fail the job. Keep the two in step.

import type { HardwareConfig } from "../api/types";

/** All platform names the job queue knows (job_queue units.py), for filtering lists. */
export const ALL_PLATFORMS = ["SpiNNaker", "BrainScaleS", "BrainScaleS-2", "Spikey", "Test", "Demo"];

/** Platforms this deployment runs jobs on (the emulators serve these). */
export const SUBMIT_PLATFORMS = ["SpiNNaker", "BrainScaleS-2"];

/** Units usage is charged in (job_queue units.py). */
export function usageUnits(platform: string): string {
  return (
    { SpiNNaker: "core-hours", BrainScaleS: "wafer-hours", "BrainScaleS-2": "chip-hours" } as Record<string, string>
  )[platform] ?? "hours";
}

export type FieldKind = "text" | "integer" | "lines";

export interface ConfigField {
  key: string;
  label: string;
  kind: FieldKind;
  help: string;
}

export const CONFIG_FIELDS: Record<string, ConfigField[]> = {
  SpiNNaker: [
    { key: "spynnaker_version", label: "sPyNNaker version", kind: "text", help: "e.g. master or 7.0.0" },
    { key: "spinnaker_tools_version", label: "SpiNNaker tools version", kind: "text", help: "e.g. master" },
    { key: "pyNN_version", label: "PyNN version", kind: "text", help: "e.g. 0.12.0" },
    { key: "extra_pip_installs", label: "Extra pip installs", kind: "lines", help: "one package per line" },
    { key: "extra_python_setups", label: "Extra Python setups", kind: "lines", help: "one path per line" },
    { key: "extra_git_repositories", label: "Extra git repositories", kind: "lines", help: "one URL per line" },
    { key: "extra_makes", label: "Extra makes", kind: "lines", help: "one directory per line" },
  ],
  "BrainScaleS-2": [
    { key: "SOFTWARE_VERSION", label: "Software version", kind: "text", help: "e.g. nmpm_software/current" },
    { key: "WAFER_MODULE", label: "Wafer module", kind: "integer", help: "number of the wafer module" },
    { key: "HICANN", label: "HICANN", kind: "integer", help: "chip number" },
    { key: "FPGA", label: "FPGA", kind: "integer", help: "FPGA number" },
  ],
};

export function knownKeys(platform: string): string[] {
  return (CONFIG_FIELDS[platform] ?? []).map((f) => f.key);
}

/** Keys of `config` that the platform's site would refuse. */
export function unknownKeys(platform: string, config: HardwareConfig): string[] {
  const known = new Set(knownKeys(platform));
  if (!CONFIG_FIELDS[platform]) return [];
  return Object.keys(config).filter((k) => !known.has(k));
}

/** The form's text for a field's value. */
export function fieldText(field: ConfigField, value: unknown): string {
  if (value === undefined || value === null) return "";
  if (field.kind === "lines") return Array.isArray(value) ? value.map(String).join("\n") : String(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** A field's value from the form's text; undefined when empty (the key is then left out). */
export function fieldValue(field: ConfigField, text: string): unknown {
  if (field.kind === "lines") {
    const lines = text.split("\n").map((l) => l.trim());
    // Keep a trailing empty line while typing? No: JSON holds the cleaned list.
    const items = lines.filter(Boolean);
    return items.length ? items : undefined;
  }
  if (field.kind === "integer") {
    const trimmed = text.trim();
    if (!trimmed) return undefined;
    const n = Number(trimmed);
    return Number.isInteger(n) ? n : trimmed;
  }
  return text === "" ? undefined : text;
}

/** Parse the raw JSON text: an object, or an error message. */
export function parseConfig(text: string): { config: HardwareConfig } | { error: string } {
  if (!text.trim()) return { config: {} };
  try {
    const value: unknown = JSON.parse(text);
    if (value === null) return { config: {} };
    if (typeof value !== "object" || Array.isArray(value)) {
      return { error: "The hardware configuration must be a JSON object ({...})." };
    }
    return { config: value as HardwareConfig };
  } catch (error) {
    return { error: `Not valid JSON: ${(error as Error).message}` };
  }
}

export const formatConfig = (config: HardwareConfig) =>
  Object.keys(config).length ? JSON.stringify(config, null, 2) : "{}";
