import "@testing-library/jest-dom/vitest";
import { afterEach, vi } from "vitest";
import { cleanup } from "@testing-library/react";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

// jsdom has no canvas: a recording 2D context stands in (tests read its calls).
export interface RecordedCall {
  name: string;
  args: unknown[];
}

export function recordingContext(): CanvasRenderingContext2D & { calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const target: Record<string, unknown> = { calls, canvas: null };
  return new Proxy(target, {
    get(obj, prop: string) {
      if (prop in obj) return obj[prop];
      if (prop === "measureText") return (text: string) => ({ width: text.length * 7 });
      return (...args: unknown[]) => {
        calls.push({ name: prop, args });
      };
    },
    set(obj, prop: string, value) {
      obj[prop] = value;
      calls.push({ name: `set:${prop}`, args: [value] });
      return true;
    },
  }) as unknown as CanvasRenderingContext2D & { calls: RecordedCall[] };
}

Object.defineProperty(HTMLCanvasElement.prototype, "getContext", {
  configurable: true,
  writable: true,
  value: function getContext(this: HTMLCanvasElement & { __ctx?: ReturnType<typeof recordingContext> }) {
    this.__ctx ??= recordingContext();
    return this.__ctx;
  },
});
