// Optional CSP nonce for the <style> elements that emotion (MUI) and CodeMirror insert.
//
// index.html carries <meta name="csp-nonce" content="__NMPI_CSP_NONCE__">. A server that wants
// `style-src 'self' 'nonce-…'` instead of 'unsafe-inline' substitutes a fresh random value for
// the placeholder on every response (nginx: sub_filter) and sends the same value in its CSP.
// Left as the placeholder, no nonce is used (the CSP then needs style-src 'unsafe-inline').

const PLACEHOLDER = "__NMPI_CSP_NONCE__";

export function cspNonce(doc: Document = document): string | undefined {
  const value = doc.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content?.trim();
  if (!value || value === PLACEHOLDER || !/^[A-Za-z0-9+/_=-]{8,}$/.test(value)) return undefined;
  return value;
}
