// `npm run bench` (not a test): CPU benchmarks against baselines run in the same invocation, results appended
// to docs/benchmarks.md with the date and the machine.
//
//   node scripts/bench/run.mjs [--only train,engine,peer,pipeline] [--steps 60] [--eval-every 5] [--seeds 42,1,2,3]
//        [--threads 2] [--train-threads N] [--rounds N] [--no-write] [--engine-json F] [--peer-json F]
//
// train:    the tutorial's HF Trainer recipe vs `python -m bloom_peft train` (scripts/bench/train_bench.py)
// train-stop: the stop's hooks and RNG snapshot on the training hot path, with/without interleaved, embedded and
//           bloom-560m shapes (scripts/bench/train_step_ab.py; [--stop-cases C] passes its --cases)
// engine:   the TS engine vs transformers generate, warm vs cold, decode ms/token of a bloom-560m-shaped export
//           (fp32, int8) against the read-bandwidth bound, legs interleaved (scripts/bench/engine_vs_torch.ts)
// peer:     the TS engine vs llama.cpp (node-llama-cpp, pinned in scripts/bench/peer, installed on first use) on
//           GGUFs of the same weights: prefill and decode ratios, decode vs the bound (scripts/bench/engine_vs_llama.ts)
// pipeline: keystroke -> ghost text p50/p95 through the headless pipeline, embedded and 560m-shaped exports
//           (scripts/bench/pipeline.ts)
// Exports are cached under $TMPDIR/bloom-peft-bench (delete it to re-export).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PY = fs.existsSync(path.join(ROOT, '.venv/bin/python')) ? path.join(ROOT, '.venv/bin/python') : 'python3';
const CACHE = path.join(os.tmpdir(), 'bloom-peft-bench');
// Bumped when the exporter's graph changes, so cached exports are made again (2: new_key_values outputs, 3: logits_to_keep input, 4: signed int8 vocabulary).
const EXPORT_REV = 'r10'; // r10: format 6 (next_tokens for every kept position); r9: q scaled per head (attention at alpha 1); r5: export format 3; r7: format 4 with next_token (r6 was the reverted GroupQueryAttention format 4); r8: format 5 (position-major past)
const CACHE_560M = path.join(CACHE, `560m-${EXPORT_REV}`);
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const PARTS = ['train', 'train-stop', 'engine', 'peer', 'pipeline'];
const only = opt('only', PARTS.join(',')).split(',').map(s => s.trim()).filter(Boolean);
for (const p of only) if (!PARTS.includes(p)) fail(`unknown part '${p}' in --only (expected ${PARTS.join(', ')})`);
const write = !argv.includes('--no-write');
const THREADS = opt('threads', '2');
const ROUNDS = opt('rounds', '3');
const pyEnv = { ...process.env, PYTHONPATH: path.join(ROOT, 'trainer/src'), TOKENIZERS_PARALLELISM: 'false' };

function fail(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}
const log = msg => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : Number(x).toFixed(d));

/** Runs a command, returns [stdout, stderr]; its stderr is echoed too so long parts show progress. */
function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    process.stderr.write(r.stderr?.slice(-4000) ?? '');
    throw new Error(`${path.basename(cmd)} ${args.slice(0, 3).join(' ')} exited ${r.status ?? r.signal}`);
  }
  return [r.stdout, r.stderr];
}
const lastJson = out => JSON.parse(out.trim().split('\n').filter(l => l.startsWith('{')).pop());

function machine() {
  const sh = c => { try { return execFileSync('bash', ['-c', c], { encoding: 'utf8' }).trim(); } catch { return 'n/a'; } };
  const torchV = sh(`${PY} -c "import torch, transformers, onnxruntime; print(torch.__version__, transformers.__version__, onnxruntime.__version__)"`);
  return {
    cpu: sh("lscpu | sed -n 's/^Model name: *//p'"), cores: os.cpus().length,
    // amx_int8: onnxruntime's MLAS then runs int8 products on AMX, slower for a decode step (docs/engine.md)
    flags: sh("lscpu | grep -o 'avx512f\\|avx2\\|avx512_vnni\\|avx512_bf16\\|amx_int8' | sort -u | tr '\\n' ' '"),
    // lscpu has no L3 line in some VMs; getconf then reads CPUID (in a VM: the host's, which may be the socket's total)
    llc: sh("lscpu | sed -n 's/^L3 cache: *//p'") || `${Math.round(Number(sh('getconf LEVEL3_CACHE_SIZE')) / 2 ** 20) || 'n/a'} MiB (getconf)`, memGiB: Math.round(os.totalmem() / 2 ** 30), load: os.loadavg().map(x => x.toFixed(1)).join(' '),
    node: process.version, pyStack: torchV,
  };
}

function trainPart() {
  const steps = opt('steps', '60');
  const every = opt('eval-every', '5');
  // Several seeds: with 8-row steps a run crosses the target between two evals 5 steps apart, so one seed's
  // ratio swings by tens of percent; the median is the figure, each seed's row is kept.
  const seeds = opt('seeds', '42,1,2,3').split(',').map(s => s.trim()).filter(Boolean);
  const trainThreads = opt('train-threads', THREADS);
  log(`train: baseline (HF Trainer, batch 1 x accum 8) and the project trainer, ${steps} steps each, seeds ${seeds.join(', ')}, ${trainThreads} thread(s) (a few minutes)`);
  const results = seeds.map(seed => lastJson(run(PY, ['scripts/bench/train_bench.py', '--steps', steps, '--eval-every', every, '--threads', trainThreads, '--seed', seed], pyEnv)[0]));
  const r = results[0];
  const names = Object.keys(r).filter(k => k === 'baseline' || k.startsWith('project_'));
  const median = xs => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];
  const seedRows = results.flatMap((x, i) => names.map(k => {
    const hit = x.time_to_target[k];
    const sp = k === 'baseline' ? 1 : x.speedup_time_to_target[k];
    return `| ${seeds[i]} | ${k} | ${hit ? `${f(hit.t)} s (step ${hit.step})` : 'not reached'} | **${f(sp, 2)}x** | ${f(x[k].tokens_per_s, 0)} | ${f(k === 'baseline' ? 1 : x.speedup_tokens_per_s[k], 2)}x | ${f(x[k].train_s_excl_eval)} | ${f(x[k].eval_s)} | ${f(Math.min(...x[k].evals.map(e => e.eval_loss)), 3)} | ${f(x[k].peak_rss_mib, 0)} |`;
  }));
  const medians = names.filter(k => k !== 'baseline').map(k => `- ${k}: time to target **${f(median(results.map(x => x.speedup_time_to_target[k])), 2)}x** (seeds: ${results.map(x => f(x.speedup_time_to_target[k], 2)).join(', ')}), tokens/s ${f(median(results.map(x => x.speedup_tokens_per_s[k])), 2)}x`);
  const curve = results.flatMap((x, i) => names.map(k => `- seed ${seeds[i]}, ${k}: ${x[k].evals.map(e => `${e.step}:${f(e.eval_loss, 3)}@${f(e.t, 0)}s`).join(' ')}`));
  return [
    `### Training (CPU): time to the same eval loss`,
    '',
    `${r.method} fine-tuning of ${path.relative(ROOT, r.model)} on examples/code-tasks (400 train rows, 60 held-out), lr ${r.lr} linear, 8 rows per optimizer step, ${r.steps} steps, eval every ${r.eval_every} steps (token-weighted held-out loss, same definition on both sides), torch threads ${r.threads}, seeds ${seeds.join(', ')} (data order and initialization of both sides). Baseline: the tutorial's recipe (HF Trainer, per_device_train_batch_size 1, gradient_accumulation_steps 8, fp32, DataCollatorForSeq2Seq, Human/Assistant template, -100 prompt masking, max length 256). Project: \`python -m bloom_peft train\`, micro-batch 8, with and without length grouping. Per seed, target eval loss = the lowest loss every run of that seed reaches (${results.map(x => f(x.target_eval_loss, 3)).join(', ')}). Times are wall time from the start of the training loop (evals included). Load average at the end: ${results.at(-1).load_average.map(x => x.toFixed(1)).join(' ')}.`,
    '',
    'Medians over the seeds:',
    ...medians,
    '',
    '| seed | run | time to target | speedup | tokens/s (excl. eval) | tokens/s ratio | train s | eval s | best eval loss | peak RSS MiB |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...seedRows,
    '',
    'Eval curves (step:loss@seconds):',
    ...curve,
  ].join('\n');
}

function trainStopPart() {
  log('train-stop: training steps with and without the stop\'s hooks and RNG snapshot, interleaved (a few minutes; 560m full fine-tuning needs ~10 GB)');
  const cases = opt('stop-cases', '');
  const args = ['scripts/bench/train_step_ab.py', '--threads', opt('train-threads', THREADS), '--scratch', path.join(CACHE, 'train-step-ab'), ...(cases ? ['--cases', cases] : [])];
  return lastJson(run(PY, args, pyEnv)[0]).markdown;
}

function engineExports() {
  const dir = CACHE_560M;
  // --engine-json FILE: format the JSON of a finished `scripts/bench/engine_vs_torch.ts --out <CACHE>/560m` run instead
  const saved = opt('engine-json', '');
  if (saved) return { dir, result: JSON.parse(fs.readFileSync(saved, 'utf8')), table: [] };
  log('engine: bloom-560m-shaped random weights, exports fp32 + int8 (cached in ' + dir + '; the first export takes minutes)');
  const [out, err] = run('node', ['--import', 'tsx', 'scripts/bench/engine_vs_torch.ts', '--shape', '560m', '--threads', THREADS, '--tokens', '32', '--rounds', ROUNDS, '--out', dir]);
  const result = JSON.parse(out.slice(out.indexOf('{')));
  // the default completion model itself (models/bloom-tiny), exported into a folder keyed by its weights
  log('engine: the embedded model (models/bloom-tiny) vs transformers generate');
  const [eout] = run('node', ['--import', 'tsx', 'scripts/bench/engine_vs_torch.ts', '--shape', 'embedded', '--threads', THREADS, '--tokens', '32', '--rounds', ROUNDS, '--out', embeddedCacheDir() + '-engine']);
  const embedded = JSON.parse(eout.slice(eout.indexOf('{')));
  return { dir, result, embedded, table: err.trim().split('\n').filter(l => l.startsWith('|') || l.startsWith('bloom-') || l.startsWith('PyTorch')) };
}

function embeddedCacheDir() {
  const weights = fs.readFileSync(path.join(ROOT, 'models/bloom-tiny/model.safetensors'));
  return path.join(CACHE, `embedded-${createHash('sha256').update(weights).digest('hex').slice(0, 12)}-${EXPORT_REV}`);
}

function enginePart(e) {
  const r = e.result;
  const fp32 = r.engine.fp32;
  const int8 = r.engine.int8;
  return [
    '### Completion engine (CPU): TS engine vs transformers generate',
    '',
    `bloom-560m shapes (vocab 250,880, hidden 1024, 24 layers), random weights, ${r.threads} threads, prompt ${fp32.promptTokens} tokens, ${r.tokens} tokens decoded greedily. The engine is onnxruntime-node on the project's export; the baseline is \`model.generate\` (PyTorch, fp32, same prompt) in a helper process. The three legs run interleaved (one measurement each per round, order rotating); medians over the ${r.cleanRounds} of ${r.rounds} rounds in which other processes took <= ${f(r.maxOther * 100, 0)}% of the CPU in every leg${r.allDisturbed ? ' (**none was: all rounds are included and the figures are disturbed**)' : ''}; others' share per round (PyTorch / fp32 / int8): ${r.otherShare.map(x => x.map(v => f(v * 100, 0) + '%').join(' / ')).join('; ')}.`,
    '',
    `- engine decode (fp32) vs PyTorch generate: ${f(fp32.decodeMsPerToken)} vs ${f(r.torch.decode_ms_per_token)} ms/token = **${f(r.torch.decode_ms_per_token / fp32.decodeMsPerToken, 2)}x faster** (goal >= 3x); int8: ${f(int8.decodeMsPerToken)} ms/token = **${f(r.torch.decode_ms_per_token / int8.decodeMsPerToken, 2)}x**`,
    `- first token (cold prefill): engine fp32 ${f(fp32.coldFirstTokenMs, 0)} ms vs PyTorch ${f(r.torch.first_token_ms, 0)} ms = ${f(r.torch.first_token_ms / fp32.coldFirstTokenMs, 2)}x`,
    `- warm (one more character typed) / cold first token: fp32 **${f(fp32.warmOverCold * 100, 0)}%**, int8 **${f(int8.warmOverCold * 100, 0)}%** (goal <= 25%)`,
    `- decode vs the bandwidth bound (model bytes / read bandwidth ${f(r.machine.readBandwidthGBs)} GB/s: median of a ${r.threads}-thread read-only pass over 1 GiB before each round, spread ${f(r.machine.readBandwidthSpreadGBs[0])}-${f(r.machine.readBandwidthSpreadGBs[1])} GB/s): fp32 ${f(fp32.overBound, 2)}x the bound, int8 **${f(int8.overBound, 2)}x** the bound (goal <= 2x)`,
    ...(e.embedded ? [
      `- the embedded model (models/bloom-tiny, the default completion model; prompt ${e.embedded.engine.fp32.promptTokens} tokens): engine decode fp32 ${f(e.embedded.engine.fp32.decodeMsPerToken, 2)} vs PyTorch generate ${f(e.embedded.torch.decode_ms_per_token, 2)} ms/token = **${f(e.embedded.torch.decode_ms_per_token / e.embedded.engine.fp32.decodeMsPerToken, 2)}x faster**; first token ${f(e.embedded.engine.fp32.coldFirstTokenMs, 1)} vs ${f(e.embedded.torch.first_token_ms, 1)} ms = ${f(e.embedded.torch.first_token_ms / e.embedded.engine.fp32.coldFirstTokenMs, 2)}x; warm/cold first token ${f(e.embedded.engine.fp32.warmOverCold * 100, 0)}%`,
    ] : []),
    '',
    ...e.table,
  ].join('\n');
}

function peerPart() {
  // --peer-json FILE: format the JSON of a finished scripts/bench/engine_vs_llama.ts run instead
  const saved = opt('peer-json', '');
  let r;
  if (saved) r = JSON.parse(fs.readFileSync(saved, 'utf8'));
  else {
    log('peer: engine vs llama.cpp on GGUFs of the same weights (node-llama-cpp installed into scripts/bench/peer on first use)');
    const [out] = run('node', ['--import', 'tsx', 'scripts/bench/engine_vs_llama.ts', '--dir', CACHE_560M, '--threads', THREADS, '--rounds', opt('rounds', '6')]);
    r = JSON.parse(out.slice(out.indexOf('{')));
  }
  const range = s => `${f(s.median, 2)} (${f(s.min, 2)}-${f(s.max, 2)})`;
  const rows = ['int8', 'fp32'].map(q => {
    const x = r[q];
    return `| ${q} vs ${x.peer.toUpperCase()} | ${f(x.engine.prefillMs.median, 0)} | ${f(x.llama.prefillMs.median, 0)} | **${range(x.ratio.prefill)}** | ${f(x.engine.decodeMsPerToken.median)} | ${f(x.llama.decodeMsPerToken.median)} | **${range(x.ratio.decode)}** | ${f(x.engine.boundMs)} / ${f(x.llama.boundMs)} | ${f(x.engine.overBound, 2)}x / ${f(x.llama.overBound, 2)}x | ${x.clean} of ${x.rounds}${x.allDisturbed ? ' (all disturbed)' : ''} | ${x.greedy.sameTokens}/${x.greedy.of} |`;
  });
  const parity = ['int8', 'fp32'].map(q => { const x = r[q].parity; return x ? `${q}/${r[q].peer.toUpperCase()}: ${x.sameTop5 ? 'same top 5 ids' : `top 5 ${x.engineTop5.join(',')} vs ${x.llamaTop5.join(',')}`}, largest log-probability difference over the engine's top 5 ${x.maxLogPDiffTop5}` : `${q}: not measured`; }).join('; ');
  const disturbed = ['int8', 'fp32'].some(q => r[q].allDisturbed);
  const others = ['int8', 'fp32'].map(q => `${q}: ${r[q].otherShare.map(([a, b]) => `${f(a * 100, 0)}/${f(b * 100, 0)}%`).join(' ')}`).join('; ');
  return [
    '### Completion engine vs llama.cpp (CPU): same weights, interleaved',
    '',
    `bloom-${r.shape} shapes, random weights (scripts/bench/bench_model.py), ${r.threads} threads, greedy, a ${r.promptTokens}-token prompt (the same token ids for both), ${r.newTokens} new tokens. The engine: onnxruntime-node on the project's int8 and fp32 exports. llama.cpp: node-llama-cpp 3.21.1 (CPU prebuilt) on GGUFs of the same weights written by scripts/bench/peer/write_gguf.py (Q8_0 and F32, BLOOM layout of llama.cpp's converter). Each pair is loaded side by side and run in alternating legs (order flipped every round); prefill = time to the first token from an empty KV cache; decode = ms per later token. Ratios are engine / llama.cpp per round (below 1: the engine is faster), median (min-max) over the rounds in which other processes took <= ${f(r.maxOther * 100, 0)}% of the CPU in both legs (others' share per round, engine/llama.cpp: ${others}). Bound = weight bytes read per token / the ${r.threads}-thread read bandwidth, measured before every round: median ${f(r.bandwidth.GBs.median)} GB/s, spread ${f(r.bandwidth.GBs.min)}-${f(r.bandwidth.GBs.max)} GB/s over ${r.bandwidth.clean ? `the ${r.bandwidth.clean} clean of ${r.bandwidth.measured} readings` : `all ${r.bandwidth.measured} readings (none clean)`} (${f(r.bandwidth.bufferMiB, 0)} MiB buffer). Load average at the end: ${r.machine.loadAvg.map(x => x.toFixed(1)).join(' ')}.`,
    '',
    ...(disturbed ? ['**No undisturbed round in at least one pair: its figures were taken while other processes held most of the CPU, and show how each engine degrades under contention, not their speed.**', ''] : []),
    `Parity (next-token distribution after the prompt): ${parity}.`,
    '',
    '| engine vs llama.cpp | engine prefill ms | llama.cpp prefill ms | engine / llama.cpp prefill | engine decode ms/token | llama.cpp decode ms/token | engine / llama.cpp decode | bound ms/token (engine / llama.cpp) | decode vs bound (engine / llama.cpp) | clean rounds | same greedy tokens |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function pipelinePart(exportsDir) {
  // keyed by the embedded weights' hash, so a regenerated models/bloom-tiny is exported afresh
  const embedded = embeddedCacheDir();
  if (!fs.existsSync(path.join(embedded, 'manifest.json'))) {
    log('pipeline: exporting the embedded model');
    run(PY, ['-m', 'bloom_peft', 'export', '--model', 'embedded', '--out', embedded], pyEnv);
  }
  // The 560m int8 export through pipeline.ts --build-560m: its int8-walk copy permutes the vocabulary's columns, since
  // greedy decoding of random tied weights repeats the prompt's last token and shows no line to measure (pipeline.ts)
  const targets = [['embedded (bloom-tiny)', ['--export', embedded, '--docs', '6', '--keys', '6']]];
  const base560m = exportsDir ?? CACHE_560M;
  if (fs.existsSync(path.join(base560m, 'int8', 'manifest.json'))) targets.push(['bloom-560m shape, int8 (walk)', ['--build-560m', base560m, '--docs', '4', '--keys', '3']]);
  const rows = [];
  for (const [name, where] of targets) {
    log(`pipeline: ${name}`);
    const r = lastJson(run('node', ['--import', 'tsx', 'scripts/bench/pipeline.ts', ...where, '--threads', THREADS, '--modes', 'singleLine'])[0]);
    // today's pipeline ('after') and the baseline ('before'), single-line: pipeline.ts's summary rows
    const { cold, warm } = r.summary['after/singleLine'];
    const before = r.summary['before/singleLine'].warm;
    const pair = (s, d = 0) => `${f(s.p50, d)} / ${f(s.p95, d)}`;
    rows.push(`| ${name} | ${f(r.loadMs, 0)} | ${pair(cold.engine)} | ${pair(cold.total)} | ${pair(warm.engine)} | **${f(warm.total.p50, 0)}** / ${f(warm.total.p95, 0)} | ${f(warm.tokensShown.p50, 0)} / ${f(warm.charsShown.p50, 0)} | ${warm.late} of ${warm.shown} | ${pair(before.total)} (${f(before.charsShown.p50, 0)} characters) | ${f(warm.total.p50 / before.total.p50, 2)} | ${cold.total.n}+${warm.total.n} (${r.cacheHits} cache, ${r.emptyCompletions} empty) | ${f(r.peakRssMiB, 0)} |`);
  }
  return [
    '### Completion pipeline (CPU): keystroke -> ghost text',
    '',
    `Headless pipeline (src/completion/headless.ts: prefilter, debounce 150 ms, adaptive; cache, engine, post-processing; the 300 ms latency budget), ${THREADS} engine threads, default settings (48 tokens max, single line). Times from the keystroke as the user sees it (VS Code asks 50 ms after the change). Cold: a document the engine has not seen (6 code-corpus windows for the embedded model, 4 for the 560m shapes); warm: the same document with one more character typed after a pause (6 / 3 keystrokes each). Total counts empty answers (dropped by post-processing) by their wall time; engine = the engine's share, shown completions only. Milliseconds, p50 / p95. Shown = tokens / characters of the warm ghost text at the median; late = warm completions returned after the budget. Baseline, same run, documents alternating which goes first: the pipeline before the latency work (\`pipeline.ts\`'s default --before-rev: no prefill during the debounce, no budget, no line-end stop).`,
    '',
    '| export | load ms | cold engine | cold total | warm engine | warm total | warm shown | late | baseline warm total (shown) | warm total / baseline p50 | samples | peak RSS MiB |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

const sections = [];
const m = machine();
log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, load ${m.load}`);
let engine;
for (const part of only) {
  try {
    if (part === 'train') sections.push(trainPart());
    if (part === 'train-stop') sections.push(trainStopPart());
    if (part === 'engine') sections.push(enginePart((engine = engineExports())));
    if (part === 'peer') sections.push(peerPart());
    if (part === 'pipeline') sections.push(pipelinePart(engine?.dir));
  } catch (err) {
    log(`${part} failed: ${err.message}`);
    sections.push(`### ${part}\n\nFailed in this run: ${err.message}`);
  }
}
const md = [
  '',
  `## Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC (${only.join(', ')})`,
  '',
  `Machine: ${m.cpu}, ${m.cores} cores (${m.flags.trim()}), L3 ${m.llc}, ${m.memGiB} GiB RAM, load average at start ${m.load}; Node ${m.node}, torch/transformers/onnxruntime ${m.pyStack}.`,
  `Reproduce: \`npm run bench -- --only ${only.join(',')}\``,
  '',
  sections.join('\n\n'),
  '',
].join('\n');
console.log(md);
if (write) {
  fs.appendFileSync(path.join(ROOT, 'docs/benchmarks.md'), md);
  log('appended to docs/benchmarks.md');
}
