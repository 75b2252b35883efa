// Where the bundled trainer lives. The same code runs from dist/*.js (extension, CLI) and from src/ via tsx
// (tests), so the root is found by walking up to the folder that holds trainer/src/bloom_peft.
import fs from 'node:fs';
import path from 'node:path';

let cachedRoot: string | undefined;

/** The extension / project root: dist/.. when bundled, the repo root in development. */
export function extensionRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'trainer', 'src', 'bloom_peft', '__main__.py'))) return (cachedRoot = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the bundled trainer (trainer/src/bloom_peft) above ${__dirname}`);
    dir = up;
  }
}

/** The folder put on PYTHONPATH (and used as cwd) for `python -m bloom_peft`. */
export function trainerSourceDir(root = extensionRoot()): string {
  return path.join(root, 'trainer', 'src');
}

export function requirementsLock(root = extensionRoot()): string {
  return path.join(root, 'trainer', 'requirements.lock');
}

/** The sample dataset shipped with the project, if present (quick-pick default). */
export function sampleDataset(root = extensionRoot()): string | undefined {
  for (const name of ['train.jsonl', 'train.json', 'train.csv']) {
    const p = path.join(root, 'examples', 'code-tasks', name);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

/** Python inside a virtual environment folder. */
export function venvPython(venvDir: string): string {
  return process.platform === 'win32' ? path.join(venvDir, 'Scripts', 'python.exe') : path.join(venvDir, 'bin', 'python');
}
