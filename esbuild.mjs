// Builds the bundles: extension host (node/cjs), CLI (node/cjs), the completion engine's process (inference-worker.js,
// forked by src/inference/engine.ts), the run supervisor, and the dashboard webview (browser).
// usage: node esbuild.mjs [--watch] [--production]
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import { configValidatorPlugin } from './webview/build/config-validator-plugin.mjs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const node = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: !production,
  minify: production,
  // vscode is provided by the host; onnxruntime-node ships a native binary that must stay a real module on disk
  external: ['vscode', 'onnxruntime-node'],
  logLevel: 'info',
};

const builds = [
  { ...node, entryPoints: { extension: 'src/extension.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } },
  { ...node, entryPoints: { 'inference-worker': 'src/inference/worker.ts' }, outdir: 'dist' },
  // the detached owner of trainers started from VS Code (outlives window reloads; src/training/runSupervisorMain.ts)
  { ...node, entryPoints: { 'run-supervisor': 'src/training/runSupervisorMain.ts' }, outdir: 'dist' },
  {
    bundle: true, platform: 'browser', format: 'iife', target: 'es2022',
    sourcemap: !production, minify: production, logLevel: 'info',
    entryPoints: { webview: 'webview/main.ts' }, outdir: 'dist',
    loader: { '.css': 'css' },
    // the webview's CSP has no 'unsafe-eval': the config validator is precompiled (ajv standalone)
    plugins: [configValidatorPlugin],
  },
].filter(b => Object.values(b.entryPoints).every(p => fs.existsSync(p)));

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map(b => esbuild.build(b)));
}
