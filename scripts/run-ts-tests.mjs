// Runs every test/**/*.test.ts (except test/e2e) with node's test runner through tsx.
// usage: node scripts/run-ts-tests.mjs [filter-substring...]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const filters = process.argv.slice(2);
const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (p !== path.join('test', 'e2e')) walk(p); }
    else if (e.name.endsWith('.test.ts') && (filters.length === 0 || filters.some(f => p.includes(f)))) files.push(p);
  }
})('test');
files.sort();
if (files.length === 0) { console.error('no test files matched'); process.exit(1); }
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
