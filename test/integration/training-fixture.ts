// Shared setup for the host's integration tests: the real trainer (project .venv), the embedded model
// (models/bloom-tiny), tiny configs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TrainerEvent, TrainingConfig } from '../../src/protocol';
import { TrainingService } from '../../src/training/service';
import type { RunEnd } from '../../src/training';

export const ROOT = path.resolve(__dirname, '..', '..');
export const PYTHON = process.env.BLOOM_PEFT_PYTHON ?? path.join(ROOT, '.venv', 'bin', 'python');
export const TRAIN_FILE = path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl');
/** at most 2 torch threads per trainer (CI has 2 cores) */
export const ENV: NodeJS.ProcessEnv = { ...process.env, TORCH_NUM_THREADS: '2', OMP_NUM_THREADS: '2', TOKENIZERS_PARALLELISM: 'false' };

/**
 * `env` with faults injected into every trainer it starts, through the trainer's one fault seam
 * (trainer/src/bloom_peft/testing/faults.py: trainer/tests/fault_site on PYTHONPATH, the faults in
 * BLOOM_PEFT_TEST_FAULTS), e.g. `{ step_delay: 0.5 }` for a steady pace a test can act in.
 */
export function withFaults(faults: Record<string, number>, env: NodeJS.ProcessEnv = ENV): NodeJS.ProcessEnv {
  const site = path.join(ROOT, 'trainer', 'tests', 'fault_site');
  return { ...env, PYTHONPATH: env.PYTHONPATH ? `${site}${path.delimiter}${env.PYTHONPATH}` : site, BLOOM_PEFT_TEST_FAULTS: JSON.stringify(faults) };
}

/** The embedded model (models/bloom-tiny, "embedded" in a config): what a user's first run trains. */
export function baseModel(): string {
  if (!fs.existsSync(path.join(ROOT, 'models', 'bloom-tiny', 'model.safetensors'))) throw new Error('models/bloom-tiny is missing (scripts/make_model.py makes it)');
  return 'embedded';
}

export function tinyConfig(overrides: { training?: TrainingConfig['training']; export?: TrainingConfig['export']; method?: TrainingConfig['method'] } = {}): TrainingConfig {
  return {
    model: { name_or_path: baseModel() },
    method: overrides.method ?? { name: 'lora' },
    data: { format: 'instruction', train_file: TRAIN_FILE, max_samples: 48, eval_split: 0.1 },
    training: { max_steps: 4, batch_size: 4, max_length: 48, eval_every: 0, save_every: 2, log_every: 1, num_workers: 0, seed: 1, ...overrides.training },
    export: { onnx: false, ...overrides.export },
  };
}

const temps: string[] = [];
process.on('exit', () => { for (const d of temps) fs.rmSync(d, { recursive: true, force: true }); });

/** A scratch folder, removed when the test process exits. */
export function tempDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bloom-peft-${name}-`));
  temps.push(dir);
  return dir;
}

export function newService(runsDir: string, env: NodeJS.ProcessEnv = ENV, stopTimeoutMs = 30_000): TrainingService {
  return new TrainingService({
    runsDir: () => runsDir,
    env,
    stopTimeoutMs: () => stopTimeoutMs,
    python: async () => ({ path: PYTHON, source: 'env', ready: true }),
    follow: true,
  });
}

/** Records every event of one service and resolves the next run end. */
export function recorder(service: TrainingService) {
  const events: Array<{ runId: string; event: TrainerEvent }> = [];
  service.onEvent((runId, event) => events.push({ runId, event }));
  return {
    events,
    ended: () => new Promise<RunEnd>(resolve => { const d = service.onRunEnded(e => { d.dispose(); resolve(e); }); }),
    /** resolves on the first event matching `pred` (rejects after timeoutMs) */
    waitFor: (pred: (e: TrainerEvent) => boolean, timeoutMs = 120_000) => new Promise<TrainerEvent>((resolve, reject) => {
      const hit = events.find(x => pred(x.event));
      if (hit) return resolve(hit.event);
      const timer = setTimeout(() => { d.dispose(); reject(new Error('timed out waiting for an event')); }, timeoutMs);
      const d = service.onEvent((_id, e) => { if (pred(e)) { clearTimeout(timer); d.dispose(); resolve(e); } });
    }),
  };
}
