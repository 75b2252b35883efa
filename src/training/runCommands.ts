// The trainer's one-shot commands on a finished run (export, export-hf, evaluate): run
// `python -m bloom_peft CMD --run-dir DIR`, read its event lines, append its stderr to the run's trainer.log, and turn
// an error event or a failed exit into a TrainingError. No vscode import.
import fs from 'node:fs';
import path from 'node:path';
import type { EvaluationEvent, Quantization, TrainerEvent } from '../protocol';
import { parseLine } from './jsonLines';
import { trainerSourceDir } from './paths';
import { type ProcessResult, runProcess, tail, trainerEnv } from './python';
import { type Logger, TrainingError } from './types';

export interface RunCommandOptions {
  python: string;
  env?: NodeJS.ProcessEnv;
  log: Logger;
  signal?: AbortSignal;
  /** the trainer's log and warning events */
  onLog?: (line: string) => void;
}

type ErrorEvent = { code?: string; message: string; hint?: string };

/** `export` (ONNX for the completion engine; `quantize` overrides the run's config) or, with `hf`, `export-hf` (a
 * Hugging Face checkpoint): the folder. */
export async function exportRun(dir: string, o: RunCommandOptions & { hf?: boolean; quantize?: Quantization }): Promise<string> {
  const hf = o.hf ?? false;
  const field = hf ? 'hf_dir' : 'export_dir';
  let error: ErrorEvent | undefined;
  let out: string | undefined;
  const command = hf ? 'export-hf' : 'export';
  const r = await runOnRun(command, 'export', dir, o, line => {
    const p = parseLine(line);
    if (p?.kind === 'event') {
      const e = p.event as TrainerEvent & Record<string, unknown>;
      if (e.type === 'error') error = e as ErrorEvent;
      if (typeof e[field] === 'string') out = e[field] as string;
      if (e.type === 'log' || e.type === 'warning') o.onLog?.(String(e.message));
    } else if (p) {
      try {
        const v = JSON.parse(line);
        if (v && typeof v.export_dir === 'string') out = v.export_dir;
      } catch { /* plain text */ }
    }
  }, !hf && o.quantize ? ['--quantize', o.quantize] : []);
  if (error) throw new TrainingError(error.code ?? 'export_failed', error.message, error.hint);
  if (r.code !== 0) throw new TrainingError('export_failed', `export ${exitText(r)}: ${tail(r.stderr, 5)}`);
  return out ?? path.join(dir, hf ? 'hf' : 'export');
}

/** `evaluate`: the run's adapter and the base model answer the held-out rows; the `evaluation` event. */
export async function evaluateRun(dir: string, o: RunCommandOptions): Promise<EvaluationEvent> {
  let error: ErrorEvent | undefined;
  let evaluation: EvaluationEvent | undefined;
  const r = await runOnRun('evaluate', 'evaluate', dir, o, line => {
    const p = parseLine(line);
    if (p?.kind !== 'event') return;
    const e = p.event;
    if (e.type === 'error') error = e;
    else if (e.type === 'evaluation') evaluation = e;
    else if (e.type === 'log' || e.type === 'warning') o.onLog?.(e.message);
  });
  if (error) throw new TrainingError(error.code ?? 'evaluation_failed', error.message, error.hint);
  if (r.code !== 0 || !evaluation) throw new TrainingError('evaluation_failed', `evaluate ${exitText(r)}: ${tail(r.stderr, 5)}`);
  return evaluation;
}

async function runOnRun(command: string, tag: string, dir: string, o: RunCommandOptions, onLine: (line: string) => void, extra: string[] = []): Promise<ProcessResult> {
  let buffered = '';
  const r = await runProcess(o.python, ['-m', 'bloom_peft', command, '--run-dir', dir, ...extra], {
    cwd: trainerSourceDir(), env: trainerEnv(o.env), signal: o.signal,
    onStdout: t => { const parts = (buffered + t).split('\n'); buffered = parts.pop() ?? ''; parts.forEach(onLine); },
    onStderr: t => { for (const l of t.split('\n')) if (l.trim()) o.log.trace(`[${tag}] ${l}`); },
  });
  onLine(buffered);
  fs.appendFileSync(path.join(dir, 'trainer.log'), `=== ${command} exit ${r.code ?? r.signal}\n${r.stderr}`);
  return r;
}

function exitText(r: ProcessResult): string {
  return r.signal ? `was killed by ${r.signal}` : `exited with code ${r.code}`;
}
