// Form edit -> count / preview latency (not a test): the one-shot trainer process the dashboard started per answer
// (`python -m bloom_peft params|preview --json ...`, as runTrainerJson runs it) against the resident query service
// (src/training/queryService.ts), interleaved round by round, with the machine's load average per round.
//
//   node --import tsx scripts/bench/query_bench.ts [--rounds 3] [--python .venv/bin/python]
//
// Each round is one "form edit": a LoRA rank not asked before, so nothing is served from a cache. The service's
// first answer (its start, importing torch) is reported apart from the later ones.
import os from 'node:os';
import path from 'node:path';
import { QueryService } from '../../src/training/queryService';
import { runTrainerJson } from '../../src/training/python';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : dflt; };
const rounds = Number(opt('rounds', '3'));
const python = path.resolve(opt('python', '.venv/bin/python'));
const data = { format: 'instruction', train_file: path.resolve('examples/code-tasks/train.jsonl') };
const config = (r: number) => ({ model: { name_or_path: 'embedded' }, method: { name: 'lora', r }, data });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function main(): Promise<void> {
  const q = new QueryService({ python: async () => python, timeoutMs: 1_800_000 });
  const rows: Record<string, number[]> = { oneShotParams: [], oneShotPreview: [], serviceParams: [], servicePreview: [] };
  const loads: number[] = [];
  try {
    const first = await timed(() => q.request('params', { config: config(3) }));
    console.log(JSON.stringify({ serviceFirstAnswerMs: Math.round(first), load1: os.loadavg()[0] }));
    for (let i = 0; i < rounds; i++) {
      const c = config(4 + i);
      loads.push(os.loadavg()[0]);
      const r = {
        oneShotParams: await timed(() => runTrainerJson(python, ['params', '--json', JSON.stringify(c)], { timeoutMs: 1_800_000 })),
        serviceParams: await timed(() => q.request('params', { config: c })),
        oneShotPreview: await timed(() => runTrainerJson(python, ['preview', '--json', JSON.stringify(c), '--rows', '3'], { timeoutMs: 1_800_000 })),
        servicePreview: await timed(() => q.request('preview', { config: c, rows: 3 })),
      };
      for (const [k, v] of Object.entries(r)) rows[k]!.push(v);
      console.log(JSON.stringify({ round: i, load1: loads[i], ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)])) }));
    }
  } finally {
    q.dispose();
  }
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, Math.round(median(v))]));
  console.log(JSON.stringify({ medianMs: m, oneShotOverService: { params: +(m.oneShotParams! / m.serviceParams!).toFixed(1), preview: +(m.oneShotPreview! / m.servicePreview!).toFixed(1) }, load1: loads.map(l => +l.toFixed(1)), cpus: os.cpus().length }));
}
void main().catch(e => { console.error(e); process.exit(1); });
