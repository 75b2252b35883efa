// Shared by the completion tests that need real exports: the base model (models/bloom-tiny, or a tiny random BLOOM
// while that is missing) is trained for 40 full-fine-tuning steps on two instruction rows (tokenized by the
// trainer's own encode_example) and one code line, then exported by the trainer's export_model twice: as a plain
// completion model (plain/export) and as instruction-tuned with the default template (instr/export).
// Built once per machine state: cached under the OS temp dir by a hash of this script and the base model, written
// to a temp folder and renamed, under a lock (fixture-build.ts), so test files (separate processes) and reruns share it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildFixtureOnce } from './fixture-build';

const FIXTURE = String.raw`
import sys, time, torch
from pathlib import Path
from bloom_peft.testing.tiny_model import base_model_dir
from bloom_peft.config import parse_template
from bloom_peft.data import encode_example, render_example
from bloom_peft.export import export_model
from transformers import AutoTokenizer, BloomForCausalLM
torch.set_num_threads(1); torch.manual_seed(0)  # 1 thread: 10x faster than 2 on a busy 2-core box
out = Path(sys.argv[1]); t = time.time()
base = base_model_dir(out / "scratch")
tok = AutoTokenizer.from_pretrained(base); model = BloomForCausalLM.from_pretrained(base)
tpl = {"prompt": "Human: {instruction}\n{input}", "response_prefix": "\n\nAssistant: "}
rows = [{"instruction": "Convert to snake_case", "input": "Reset User", "output": "reset_user"},
        {"instruction": "Write a TODO comment", "input": "remove the title", "output": "# TODO: remove the title"}]
template = parse_template(tpl)
examples = [encode_example(tok, *render_example(r, template), template, 128) for r in rows]
code = tok("def add(a, b):\n    return a + b\n")["input_ids"] + [tok.eos_token_id]
examples.append({"input_ids": code, "labels": list(code)})
n = max(len(e["input_ids"]) for e in examples)
ids = torch.tensor([e["input_ids"] + [tok.pad_token_id] * (n - len(e["input_ids"])) for e in examples])
labels = torch.tensor([e["labels"] + [-100] * (n - len(e["labels"])) for e in examples])
mask = (torch.arange(n)[None, :] < torch.tensor([len(e["input_ids"]) for e in examples])[:, None]).long()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)  # 1e-2 diverges on the 8-head embedded model
model.train()
for step in range(40):
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward(); opt.step(); opt.zero_grad()
print(f"fixture: loss {loss.item():.4f} after {time.time()-t:.1f}s", file=sys.stderr)
model.eval()
export_model(model, tok, "full", out / "plain" / "export", base_model=str(base), template=None, instruction_tuned=False, verify=False)
export_model(model, tok, "full", out / "instr" / "export", base_model=str(base), template=tpl, instruction_tuned=True, verify=False)
`;

export interface CompletionFixture { plain: string; instr: string }

export function completionFixture(): CompletionFixture {
  const base = path.resolve('models/bloom-tiny/model.safetensors');
  const baseStamp = fs.existsSync(base) ? `${fs.statSync(base).size}:${fs.statSync(base).mtimeMs}` : 'random';
  // The export format is part of the key: an engine that reads a newer format refuses an older cached export.
  const key = crypto.createHash('sha256').update(FIXTURE).update(baseStamp).update(fs.readFileSync(path.resolve('trainer/src/bloom_peft/export.py'))).digest('hex').slice(0, 16);
  const dir = process.env.COMPLETION_FIXTURE ?? path.join(os.tmpdir(), `bloom-completion-fixture-${key}`);
  const done = (d: string) => fs.existsSync(path.join(d, 'instr', 'export', 'manifest.json')) && fs.existsSync(path.join(d, 'plain', 'export', 'manifest.json'));
  const tmp = `${dir}.tmp-${process.pid}`;
  buildFixtureOnce({
    what: 'completion fixture (40 training steps, two exports)',
    dir,
    done: () => done(dir),
    command: path.resolve('.venv/bin/python'),
    args: ['-c', FIXTURE, tmp],
    env: { ...process.env, PYTHONPATH: path.resolve('trainer/src'), TORCH_NUM_THREADS: '1', OMP_NUM_THREADS: '1', TOKENIZERS_PARALLELISM: 'false' },
    before: () => {
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { recursive: true });
    },
    after: () => {
      fs.rmSync(path.join(tmp, 'scratch'), { recursive: true, force: true });
      fs.rmSync(dir, { recursive: true, force: true }); // an incomplete earlier attempt
      fs.renameSync(tmp, dir);
    },
  });
  return { plain: path.join(dir, 'plain'), instr: path.join(dir, 'instr') };
}
