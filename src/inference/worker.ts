// Engine process entry (bundled to dist/inference-worker.js; started by engine.ts with child_process.fork). Owns one
// onnxruntime session for one export; the host starts a new process to load another export (session release leaks
// natively, a process's exit does not). A process of its own: a native crash of onnxruntime ends this process, not the
// extension host.
import './telemetry'; // before onnxruntime-node loads
import { DecoderModel } from './decoder';
import { EngineError, serializeError } from './errors';
import { Generator } from './generator';
import { readManifest } from './manifest';
import type { HostToWorker, WorkerInit, WorkerToHost } from './messages';
import { TextTokenizer } from './tokenizer';

if (!process.send) {
  process.stderr.write('inference-worker.js is the completion engine process: CompletionEngine starts it with an IPC channel\n');
  process.exit(2);
}
const init = JSON.parse(process.argv[2] ?? '{}') as WorkerInit;
const send = (m: WorkerToHost) => process.send!(m);
/** Sends a last message, then closes the channel once it is written (nothing else keeps the process alive). */
const sendLast = (m: WorkerToHost) => process.send!(m, undefined, {}, () => process.disconnect());
// The host is gone (it exited, was killed, or its window reloaded): so is this process.
process.on('disconnect', () => process.exit(0));

/** The request the host asked to stop; the decode loop checks it before every model step. */
let abortedId = 0;
let handle: (msg: HostToWorker) => Promise<void> = async () => {};
// One request at a time: the host sends the next only after this one is answered, but chain anyway. An abort is
// not chained: it must land while the request it stops is running.
let queue = Promise.resolve();
process.on('message', (msg: HostToWorker) => {
  if (msg.type === 'abort') abortedId = msg.id;
  else queue = queue.then(() => handle(msg));
});

async function main(): Promise<void> {
  const t0 = performance.now();
  let model: DecoderModel;
  let generator: Generator;
  try {
    const { manifest, files } = readManifest(init.exportDir);
    const tokenizer = TextTokenizer.fromFile(files.tokenizer, { vocabSize: manifest.vocab_size, manifest: files.manifest });
    model = await DecoderModel.load(files, manifest, { threads: init.threads, optimization: init.optimization });
    generator = new Generator(model, tokenizer);
    send({ type: 'ready', manifest, info: { exportDir: files.dir, loadMs: performance.now() - t0, threads: model.threads, modelPath: files.model, pid: process.pid } });
  } catch (e) {
    sendLast({ type: 'loadError', error: serializeError(e, 'MODEL_LOAD_FAILED') });
    return;
  }

  handle = async (msg: HostToWorker): Promise<void> => {
    if (msg.type === 'abort') return;
    if (msg.type === 'close') {
      await model.release().catch(() => {});
      sendLast({ type: 'closed' });
      return;
    }
    try {
      switch (msg.type) {
        case 'generate': {
          const result = await generator.generate(msg.prompt, msg.params, {
            aborted: () => abortedId === msg.id,
            onText: msg.stream ? text => send({ type: 'token', id: msg.id, text }) : undefined,
          });
          send({ type: 'result', id: msg.id, result });
          break;
        }
        case 'logits': {
          const ids = generator.encode(msg.prompt);
          if (ids.length === 0) throw new EngineError('BAD_REQUEST', 'logits() needs a prompt of at least one token', { field: 'prompt' });
          const { logits } = await model.forward(ids, model.prefix);
          send({ type: 'logits', id: msg.id, logits, ids });
          break;
        }
        case 'tokenize':
          send({ type: 'tokens', id: msg.id, ids: generator.encode(msg.text) });
          break;
        case 'resetCache':
          generator.resetCache();
          send({ type: 'done', id: msg.id });
          break;
      }
    } catch (e) {
      send({ type: 'error', id: msg.id, error: serializeError(e) });
    }
  };
}

void main();
