// Held-out exact match through what serves ghost text: the run's ONNX export in the completion engine
// (onnxruntime-node, greedy, the run's template), for scripts/eval_methods.py.
//
//   node --import tsx scripts/eval_onnx_rows.ts EXPORT_OR_RUN_DIR ROWS.jsonl...
//
// Prints one JSON line per file: { file, exact, rows, misses: [[input, answer, expected], ...] }. An answer counts when
// it equals the row's output exactly (surrounding whitespace aside, as the trainer's evaluation).
import fs from 'node:fs';
import { CompletionEngine, formatPrompt } from '../src/inference';

const MAX_NEW_TOKENS = 32;

async function main(): Promise<void> {
  const [exportDir, ...files] = process.argv.slice(2);
  if (!exportDir || !files.length) throw new Error('usage: eval_onnx_rows.ts EXPORT_OR_RUN_DIR ROWS.jsonl...');
  const engine = await CompletionEngine.load(exportDir);
  try {
    const template = engine.manifest.template;
    if (!engine.manifest.instruction_tuned || !template) throw new Error(`${exportDir}: not an instruction-tuned export (no template)`);
    for (const file of files) {
      const rows = fs.readFileSync(file, 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l) as { instruction: string; input?: string; output: string });
      const misses: [string, string, string][] = [];
      for (const row of rows) {
        const prompt = formatPrompt(template, { instruction: row.instruction, input: row.input ?? '', prompt: row.instruction });
        const { text } = await engine.generate(prompt, { maxTokens: MAX_NEW_TOKENS });
        if (text.trim() !== row.output.trim()) misses.push([row.input ?? '', text, row.output]);
      }
      process.stdout.write(`${JSON.stringify({ file, exact: rows.length - misses.length, rows: rows.length, misses })}\n`);
    }
  } finally {
    await engine.dispose();
  }
}

main().catch(e => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
