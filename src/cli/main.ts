// bloom-peft: the headless CLI. Drives the same TrainingService as the extension, without VS Code.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { QUANTIZATIONS, type EvaluationEvent, type MethodName, type Quantization, type TrainingConfig } from '../protocol';
import { StudioError } from '../protocol/errors';
import { extensionRoot } from '../training/paths';
import { findPreset, presetConfig, PRESETS } from '../training/presets';
import { resolvePython, runTrainerJson } from '../training/python';
import { TrainingService } from '../training/service';
import { type CheckReport, TrainingError, type Logger, type RunEnd, type RunSummary } from '../training/types';
import { formatDuration, ProgressRenderer } from './progress';

const USAGE = `bloom-peft — fine-tune BLOOM models with PEFT methods, headless

usage:
  bloom-peft train --config FILE [--name NAME]     train a new run (progress bar; Ctrl-C stops gracefully)
  bloom-peft train --preset NAME [--method M]      train a preset (quick-demo, tutorial) with one method
                                                   (default: the preset's); --print shows the config instead
  bloom-peft resume RUN                            continue a run from its newest complete checkpoint
  bloom-peft stop RUN [--timeout SECONDS]          gracefully stop a run (a VS Code window's or another CLI's)
  bloom-peft export RUN [--quantize Q]             ONNX export of a run's adapter (for completions); Q: none
                                                   (float32), int8, or int4 (4-bit, opt-in: smallest and
                                                   fastest on CPU, more rounding); default: the run's config
  bloom-peft export --hf RUN                       Hugging Face checkpoint (RUN/hf): merged weights, or for
                                                   prompt-learning methods the adapter naming its base
  bloom-peft complete --run RUN [--input TEXT] [--raw] [--max-tokens N] [--temperature T] [--top-p P] [--seed N] PROMPT
                                                   complete PROMPT with a run's ONNX export (greedy unless
                                                   --temperature > 0; --top-p keeps that much probability mass)
  bloom-peft evaluate RUN | --run-dir DIR          answer the run's held-out rows: exact match and ROUGE-L,
                                                   next to the base model (saved in the run's events)
  bloom-peft runs [--json]                         list runs
  bloom-peft check [--config FILE]                 Python environment report; with a config, also what it would
                                                   run into (schema, a diverging learning rate, missing data or
                                                   model folder, a device this machine lacks), without loading
                                                   the model; exit 1 when the config has an error

common options:
  --runs-dir DIR     where runs live (default: $BLOOM_PEFT_RUNS_DIR or ./.bloom-peft/runs)
  --python PATH      interpreter for the trainer (default: $BLOOM_PEFT_PYTHON, the project's .venv, python3)
  --verbose          echo the trainer's stderr (always kept in RUN/trainer.log)

RUN is a run id (a unique prefix or suffix is enough), 'latest', or a run folder.
exit codes: 0 completed, 1 failed, 2 stopped, 64 usage error.`;

const EXIT = { ok: 0, failed: 1, stopped: 2, usage: 64 } as const;

/** A command line the CLI cannot run (exit 64). */
export class UsageError extends StudioError {
  constructor(message: string) { super('usage', message); }
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' }, name: { type: 'string' }, 'runs-dir': { type: 'string' }, python: { type: 'string' },
      timeout: { type: 'string' }, run: { type: 'string' }, input: { type: 'string' }, raw: { type: 'boolean' },
      'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
      'run-dir': { type: 'string' }, json: { type: 'boolean' }, verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }, preset: { type: 'string' }, method: { type: 'string' },
      print: { type: 'boolean' }, hf: { type: 'boolean' }, quantize: { type: 'string' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE + '\n');
    return values.help ? EXIT.ok : EXIT.usage;
  }
  // numbers are checked up front: a typo is a usage error, never a silent default
  const stopTimeoutS = numberOption('--timeout', values.timeout, 30, { min: 0 });
  const runsDir = path.resolve(values['runs-dir'] ?? process.env.BLOOM_PEFT_RUNS_DIR ?? path.join('.bloom-peft', 'runs'));
  const log: Logger = {
    trace: () => {}, info: () => {},
    warn: m => { if (values.verbose) process.stderr.write(`[host] ${m}\n`); },
    error: m => process.stderr.write(`[host] ${m}\n`),
    append: t => { if (values.verbose) process.stderr.write(t); },
  };
  let baseDir = process.cwd();
  const training = new TrainingService({
    runsDir: () => runsDir,
    python: () => resolvePython({ setting: values.python }),
    log,
    stopTimeoutMs: () => stopTimeoutS * 1000,
    baseDir: () => baseDir,
    follow: false,
  });
  const need = (v: string | undefined, what: string): string => {
    if (!v) throw new UsageError(`${command}: missing ${what}`);
    return v;
  };

  switch (command) {
    case 'train': {
      if (values.preset !== undefined) {
        if (values.config !== undefined) throw new UsageError('train: give --config FILE or --preset NAME, not both');
        const config = presetTrainingConfig(values.preset, values.method);
        if (values.print) { process.stdout.write(JSON.stringify(config, null, 2) + '\n'); return EXIT.ok; }
        return supervise(training, () => training.start(config, { name: values.name }));
      }
      if (values.method !== undefined) throw new UsageError('train: --method goes with --preset (a config file names its method)');
      const file = path.resolve(need(values.config, '--config FILE or --preset NAME'));
      const config = readConfig(file);
      baseDir = path.dirname(file); // relative paths in the config are relative to the config file
      return supervise(training, () => training.start(config, { name: values.name }));
    }
    case 'resume':
      return supervise(training, () => training.resume(need(rest[0], 'RUN')));
    case 'stop': {
      const id = training.store.resolve(need(rest[0], 'RUN'));
      if (!training.store.isRunning(id)) {
        process.stdout.write(`${id} is not running (${training.store.summary(id).status})\n`);
        return EXIT.ok;
      }
      process.stdout.write(`stopping ${id}…\n`);
      await training.stop(id);
      process.stdout.write(`${id}: ${training.store.summary(id).status}\n`);
      return EXIT.ok;
    }
    case 'export': {
      const quantize = quantizeOption(values.quantize, values.hf);
      const id = training.store.resolve(need(rest[0], 'RUN'));
      process.stdout.write(`exporting ${id}${values.hf ? ' as a Hugging Face checkpoint' : quantize ? ` (${quantize})` : ''}…\n`);
      const dir = await training.exportRun(id, { hf: values.hf, quantize, onLog: m => process.stdout.write(`  ${m}\n`) });
      process.stdout.write(`${dir}\n`);
      return EXIT.ok;
    }
    case 'complete': {
      const sampling = samplingOptions(values); // a bad flag is a usage error before anything loads
      return complete(training, need(values.run, '--run RUN'), need(rest.join(' ') || undefined, 'PROMPT'), values, sampling);
    }
    case 'evaluate': {
      if (values['run-dir'] !== undefined && rest[0] !== undefined) throw new UsageError('evaluate: give RUN or --run-dir DIR, not both');
      const id = training.store.resolve(need(values['run-dir'] ?? rest[0], 'RUN (or --run-dir DIR)'));
      process.stdout.write(`evaluating ${id} on its held-out rows…\n`);
      const e = await training.evaluateRun(id, { onLog: m => { if (values.verbose) process.stdout.write(`  ${m}\n`); } });
      if (values.json) process.stdout.write(JSON.stringify(e, null, 2) + '\n');
      else process.stdout.write(evaluationReport(e) + '\n');
      return EXIT.ok;
    }
    case 'runs': {
      const runs = await training.listRuns();
      if (values.json) process.stdout.write(JSON.stringify(runs, null, 2) + '\n');
      else process.stdout.write(runsTable(runs, runsDir) + '\n');
      return EXIT.ok;
    }
    case 'check': {
      const python = await training.python();
      if (values.config === undefined) {
        const report = await training.check();
        process.stdout.write(JSON.stringify({ python_used: python, ...report }, null, 2) + '\n');
        return EXIT.ok;
      }
      // one-shot, run in the config's folder: its relative paths resolve there, as `train --config` resolves them
      const file = path.resolve(values.config);
      const exe = python.path.includes('/') ? path.resolve(python.path) : python.path; // a relative --python, before the cwd changes
      const report = await runTrainerJson<CheckReport>(exe, ['check', '--config', file], { cwd: path.dirname(file), timeoutMs: 180_000 });
      process.stdout.write(JSON.stringify({ python_used: python, ...report }, null, 2) + '\n');
      const found = report.problems.filter(p => p.file !== undefined);
      for (const p of found) process.stderr.write(`${p.level}: ${file}${p.field ? ` ${p.field}` : ''}: ${p.message}${p.hint ? `\n  hint: ${p.hint}` : ''}\n`);
      if (!found.length) process.stderr.write(`${file}: no problems found\n`);
      return found.some(p => p.level === 'error') ? EXIT.failed : EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** Starts (or resumes) and follows a run to its end: progress bar, Ctrl-C = graceful stop, twice = kill. */
async function supervise(training: TrainingService, launch: () => Promise<{ id: string; dir: string }>): Promise<number> {
  const render = new ProgressRenderer(process.stdout);
  const ended = new Promise<RunEnd>(resolve => training.onRunEnded(resolve));
  training.onEvent((_id, e) => render.event(e));
  const info = await launch();
  render.line(`run ${info.id}\n  folder ${info.dir}`);
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts === 1 && sig !== 'SIGHUP') {
      render.line(`${sig}: stopping gracefully (saving a checkpoint)… press Ctrl-C again to kill`);
      void training.stop().catch(() => {});
    } else {
      render.line('killing the trainer');
      training.disposeSync(`${sig} received`);
      process.exit(EXIT.stopped);
    }
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  process.once('exit', () => training.disposeSync('the CLI exited'));
  const end = await ended;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
  if (end.outcome === 'failed') {
    render.line(`failed: ${end.message}`);
    if (end.error && end.stderrTail) render.line(`last trainer output:\n${end.stderrTail.split('\n').slice(-8).map(l => `  ${l}`).join('\n')}`);
    render.line(`full log: ${path.join(end.dir, 'trainer.log')}\nresume with: bloom-peft resume ${end.runId}`);
    return EXIT.failed;
  }
  if (end.outcome !== 'completed') {
    render.line(`${end.message} resume with: bloom-peft resume ${end.runId}`);
    return EXIT.stopped;
  }
  if (end.adapterDir) render.line(`adapter: ${end.adapterDir}`);
  if (end.exportDir) render.line(`export:  ${end.exportDir}\ntry it:  bloom-peft complete --run ${end.runId} "<prompt>"`);
  return EXIT.ok;
}

/** --max-tokens, --temperature, --top-p and --seed, checked: a bad value is a usage error, never a silent default. */
/** --quantize of `export`: one of the schema's quantizations, for an ONNX export only. */
export function quantizeOption(value: string | undefined, hf: boolean | undefined): Quantization | undefined {
  if (value === undefined) return undefined;
  if (hf) throw new UsageError('export: --quantize is for the ONNX export; a Hugging Face checkpoint (--hf) keeps the trained precision');
  if (!QUANTIZATIONS.includes(value as Quantization)) throw new UsageError(`export: --quantize must be one of ${QUANTIZATIONS.join(', ')} (got ${JSON.stringify(value)})`);
  return value as Quantization;
}

export function samplingOptions(values: { 'max-tokens'?: string; temperature?: string; 'top-p'?: string; seed?: string }): { maxTokens: number; temperature: number; topP: number; seed?: number } {
  const topP = numberOption('--top-p', values['top-p'], 1, { min: 0 });
  if (!(topP > 0 && topP <= 1)) throw new UsageError(`--top-p ${JSON.stringify(values['top-p'])}: expected a number above 0 and at most 1`);
  return {
    maxTokens: numberOption('--max-tokens', values['max-tokens'], 64, { min: 1, integer: true }),
    temperature: numberOption('--temperature', values.temperature, 0, { min: 0 }),
    topP,
    seed: values.seed === undefined ? undefined : numberOption('--seed', values.seed, 0, { min: 0, integer: true }),
  };
}

/** The evaluation as the CLI prints it: the verdict sentence, then a few rows side by side. */
export function evaluationReport(e: EvaluationEvent): string {
  const lines = [e.message];
  for (const s of e.samples ?? []) {
    lines.push('', `  prompt:    ${oneLine(s.prompt)}`, `  reference: ${oneLine(s.reference)}`, `  answer:    ${oneLine(s.answer)} ${s.exact ? '(exact)' : `(ROUGE-L ${s.rouge_l.toFixed(2)})`}`);
    if (s.base_answer !== undefined) lines.push(`  base:      ${oneLine(s.base_answer)}`);
  }
  return lines.join('\n');
}

function oneLine(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

async function complete(training: TrainingService, runRef: string, prompt: string, values: Record<string, unknown>,
  sampling: ReturnType<typeof samplingOptions>): Promise<number> {
  const id = training.store.resolve(runRef);
  const dir = training.store.dir(id);
  // loaded lazily: onnxruntime-node is only needed here
  const { CompletionEngine, formatPrompt } = await import('../inference');
  const engine = await CompletionEngine.load(dir);
  try {
    const m = engine.manifest;
    const text = !values.raw && m.instruction_tuned && m.template
      ? formatPrompt(m.template, { instruction: prompt, input: (values.input as string | undefined) ?? '', prompt })
      : prompt;
    const result = await engine.generate(text, { ...sampling, onToken: t => process.stdout.write(t) });
    process.stdout.write('\n');
    process.stderr.write(`[${result.finishReason}; ${result.timings.generatedTokens} tokens in ${Math.round(result.timings.prefillMs + result.timings.decodeMs)} ms]\n`);
  } finally {
    await engine.dispose();
  }
  return EXIT.ok;
}

/** A preset's config (schemas/presets.json): shipped data resolve against the extension, the tutorial's against the
 * working directory (as the tutorial's ./alpaca_data_zh). */
function presetTrainingConfig(name: string, method: string | undefined): TrainingConfig {
  const preset = findPreset(name);
  if (!preset) throw new UsageError(`--preset ${JSON.stringify(name)}: no such preset (${PRESETS.map(p => p.id).join(', ')})`);
  if (method !== undefined && !(method in preset.methods)) {
    throw new UsageError(`--method ${JSON.stringify(method)}: expected one of ${Object.keys(preset.methods).join(', ')}`);
  }
  return presetConfig(preset, method as MethodName | undefined, { extension: extensionRoot(), workspace: process.cwd() });
}

function readConfig(file: string): TrainingConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TrainingError('missing_file', `${file}: cannot read the config: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'Pass --config with a JSON training config (see examples/demo-config.json).');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec((e as Error).message);
    const line = pos ? text.slice(0, Number(pos[1])).split('\n').length : undefined;
    throw new TrainingError('invalid_config', `${file}${line ? `:${line}` : ''}: not valid JSON: ${(e as Error).message}`, 'Fix the JSON syntax (trailing commas and comments are not allowed).');
  }
}

export function runsTable(runs: RunSummary[], runsDir: string): string {
  if (!runs.length) return `no runs in ${runsDir}`;
  const rows = runs.map(r => [
    r.id, r.status, r.method ?? '?', r.totalSteps ? `${r.step}/${r.totalSteps}` : String(r.step),
    fmt(r.finalTrainLoss ?? r.lastLoss), fmt(r.finalEvalLoss), r.evaluation ? `${r.evaluation.exact}/${r.evaluation.rows}` : '-',
    r.tokensPerS ? String(Math.round(r.tokensPerS)) : '-',
    r.trainablePercent !== undefined ? `${r.trainablePercent.toFixed(3)}%` : '-',
    r.startedAt ? new Date(r.startedAt).toISOString().replace('T', ' ').slice(0, 19) : '-',
    r.endedAt && r.startedAt ? formatDuration((r.endedAt - r.startedAt) / 1000) : '-',
  ]);
  const head = ['RUN', 'STATUS', 'METHOD', 'STEP', 'LOSS', 'EVAL', 'HELD-OUT', 'TOK/S', 'TRAINABLE', 'STARTED', 'TOOK'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)));
  return [head, ...rows].map(r => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

function fmt(v: number | null | undefined): string {
  return typeof v === 'number' ? v.toFixed(4) : '-';
}

/** A numeric option: `fallback` when absent; anything that is not a number in range is a usage error. */
function numberOption(name: string, v: string | undefined, fallback: number, o: { min: number; integer?: boolean }): number {
  if (v === undefined) return fallback;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || n < o.min || (o.integer && !Number.isInteger(n))) {
    throw new UsageError(`${name} ${JSON.stringify(v)}: expected ${o.integer ? 'a whole number' : 'a number'} >= ${o.min}`);
  }
  return n;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    code => { process.exitCode = code; },
    e => {
      if (e instanceof UsageError) process.stderr.write(`${e.message}\n\n${USAGE}\n`);
      else if (e instanceof TrainingError) process.stderr.write(`error: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}\n`);
      else if ((e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') process.stderr.write(`${(e as Error).message}\n\n${USAGE}\n`);
      else {
        const hint = (e as { hint?: string }).hint;
        process.stderr.write(`error: ${process.env.BLOOM_PEFT_DEBUG ? (e as Error).stack : (e as Error).message ?? e}${hint ? `\nhint: ${hint}` : ''}\n`);
      }
      process.exitCode = e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? EXIT.usage : EXIT.failed;
    },
  );
}
