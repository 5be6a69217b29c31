import { describe, expect, it } from "vitest";
import { cspNonce } from "./csp";

function doc(content: string | null): Document {
  const d = document.implementation.createHTMLDocument("x");
  if (content !== null) {
    const meta = d.createElement("meta");
    meta.name = "csp-nonce";
    meta.content = content;
    d.head.append(meta);
  }
  return d;
}

describe("cspNonce", () => {
  it("is the substituted value", () => {
    expect(cspNonce(doc("3f9a1c0b7e2d4a5b"))).toBe("3f9a1c0b7e2d4a5b");
  });
  it("is undefined when left as the placeholder, absent or odd", () => {
    expect(cspNonce(doc("__NMPI_CSP_NONCE__"))).toBeUndefined();
    expect(cspNonce(doc(null))).toBeUndefined();
    expect(cspNonce(doc("a b\"<"))).toBeUndefined();
  });
});
