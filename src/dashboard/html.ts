// The dashboard's HTML shell. Pure (no vscode) so the browser tests serve exactly what VS Code shows,
// CSP included: a fresh nonce per render, scripts only by that nonce (the bundle in dist/), styles and
// fonts only from the webview's resource origin, no inline style, no eval, no network.
import { randomBytes } from 'node:crypto';

export interface DashboardHtmlOptions {
  /** webview.cspSource (in tests: the test server's origin) */
  cspSource: string;
  nonce: string;
  /** dist/webview.js as a webview URI */
  scriptUri: string;
  /** dist/webview.css as a webview URI (the bundle's CSS: uPlot + dashboard styles) */
  styleUri: string;
}

export function makeNonce(): string {
  return randomBytes(18).toString('base64url');
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    // FAST (the toolkit) probes :focus-visible support with a <style> element carrying the csp-nonce meta's nonce
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
    "connect-src 'none'",
    "frame-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

const attr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export function renderDashboardHtml(o: DashboardHtmlOptions): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(contentSecurityPolicy(o.cspSource, o.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta property="csp-nonce" content="${attr(o.nonce)}">
<link rel="stylesheet" href="${attr(o.styleUri)}">
<title>Bloom PEFT Dashboard</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Loading the training dashboard…</p></main>
<script nonce="${attr(o.nonce)}" src="${attr(o.scriptUri)}"></script>
</body>
</html>`;
}
