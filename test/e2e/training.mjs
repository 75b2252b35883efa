import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

// Training settings of the scenarios: small enough for 2 CPU cores shared with VS Code and chromium, large enough
// for the embedded model to learn the sample task (scenario 3 checks the answer). E2E_STEPS overrides the length.
export const TRAIN = {
  method: 'lora',
  methodOptions: { r: 16, alpha: 32, dropout: 0 },
  training: {
    max_steps: Number(process.env.E2E_STEPS ?? 150), batch_size: 8, learning_rate: 0.003, max_length: 64, warmup_ratio: 0.05,
    log_every: 2, save_every: 50,
  },
  evalEvery: 50,
};

// Runs that are stopped or killed on purpose: checkpoints often; scenario 2 asks for more steps so that the Stop
// (a palette command, a second or two after the first checkpoint) lands before the end on a fast machine too.
export const SHORT = {
  max_steps: 24, batch_size: 4, learning_rate: 0.003, max_length: 48, log_every: 1, save_every: 4, eval_every: 1000,
};

/**
 * A LoRA run on `trainFile` (relative to the repository) trained with the CLI (TRAIN's hyperparameters, `steps`
 * optimizer steps), cached under the e2e home by a hash of everything that decides it (config, data, base model,
 * export format), and copied into the workspace's runs folder so the adapter picker lists it. About a minute when the
 * cache is cold.
 */
export async function cachedCliRun({ repo, state, runsDir, log }, { name, trainFile, steps = 150 }) {
  const config = {
    version: 1, run_name: name, model: { name_or_path: 'embedded' },
    method: { name: TRAIN.method, ...TRAIN.methodOptions },
    data: { format: 'instruction', train_file: path.join(repo, trainFile) },
    training: { ...TRAIN.training, max_steps: steps, log_every: 10, save_every: steps, seed: 42 },
    export: { onnx: true },
  };
  const hash = crypto.createHash('sha256').update(JSON.stringify(config));
  // the export's format (what the engine reads) is in these two files; the rest of the trainer does not change
  // what the run learns enough to matter here
  const inputs = [config.data.train_file, path.join(repo, 'trainer/src/bloom_peft/export.py'), path.join(repo, 'src/inference/manifest.ts'),
    ...listFiles(path.join(repo, 'models/bloom-tiny'))];
  for (const f of inputs) hash.update(f).update(fs.readFileSync(f));
  const cache = path.join(path.dirname(state), 'ghost-adapter', hash.digest('hex').slice(0, 16));
  const cachedRun = () => fs.existsSync(cache) ? fs.readdirSync(cache).map(d => path.join(cache, d)).find(d => fs.existsSync(path.join(d, 'export', 'manifest.json'))) : undefined;
  let dir = cachedRun();
  if (dir) log(`adapter from the cache: ${dir}`);
  else {
    // Trained into a folder of its own and renamed into place when complete, by a detached shell: if this scenario
    // runs out of time, the training still finishes and fills the cache for the next run.
    fs.mkdirSync(path.dirname(cache), { recursive: true });
    const configFile = `${cache}.config.json`;
    const logFile = `${cache}.log`;
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
    const python = process.env.BLOOM_PEFT_E2E_PYTHON ?? path.join(repo, '.venv/bin/python');
    const tmp = `${cache}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true }); // an incomplete run
    const t0 = Date.now();
    const out = fs.openSync(logFile, 'w');
    const code = await new Promise((resolve, reject) => {
      const p = spawn('sh', ['-c', '"$0" "$1" train --config "$2" --runs-dir "$3" --python "$4" && mv -T "$3" "$5"', process.execPath, path.join(repo, 'dist/cli.js'), configFile, tmp, python, cache],
        { env: { ...process.env, TORCH_NUM_THREADS: '2', OMP_NUM_THREADS: '2' }, stdio: ['ignore', out, out], detached: true });
      p.on('error', reject);
      p.on('exit', resolve);
    });
    fs.closeSync(out);
    const text = fs.readFileSync(logFile, 'utf8');
    dir = cachedRun();
    // (another run's training may have filled the cache meanwhile: then its run is used)
    if (!dir) throw new Error(`bloom-peft train (exit ${code}) left no export in ${cache}:\n${text.slice(-2000)}`);
    log(`adapter trained with the CLI in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${text.split('\n').filter(l => /^done/.test(l)).join('')}`);
  }
  const target = path.join(runsDir, path.basename(dir));
  fs.mkdirSync(runsDir, { recursive: true });
  fs.cpSync(dir, target, { recursive: true });
  return { id: path.basename(dir), dir: target, name };
}

function listFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).filter(e => e.isFile()).map(e => path.join(dir, e.name)).sort();
}
