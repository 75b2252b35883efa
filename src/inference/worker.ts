// Inference worker entry (bundled to dist/inference-worker.js). Owns one onnxruntime session for one
// export; the host recycles the whole thread to load another export (session release leaks natively).
import { parentPort, workerData } from 'node:worker_threads';
import { DecoderModel } from './decoder';
import { EngineError, serializeError } from './errors';
import { Generator } from './generator';
import { readManifest } from './manifest';
import { ABORT_SLOT, type HostToWorker, type WorkerInit, type WorkerToHost } from './messages';
import { TextTokenizer } from './tokenizer';

const port = parentPort!;
const init = workerData as WorkerInit;
const abortFlag = new Int32Array(init.abortFlag);
const send = (m: WorkerToHost, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

async function main(): Promise<void> {
  const t0 = performance.now();
  let model: DecoderModel;
  let generator: Generator;
  try {
    const { manifest, files } = readManifest(init.exportDir);
    const tokenizer = TextTokenizer.fromFile(files.tokenizer, { vocabSize: manifest.vocab_size, manifest: files.manifest });
    model = await DecoderModel.load(files, manifest, { threads: init.threads, optimization: init.optimization });
    generator = new Generator(model, tokenizer);
    send({ type: 'ready', manifest, info: { exportDir: files.dir, loadMs: performance.now() - t0, threads: model.threads, modelPath: files.model } });
  } catch (e) {
    send({ type: 'loadError', error: serializeError(e, 'MODEL_LOAD_FAILED') });
    return;
  }

  // One request at a time: the host sends the next only after this one is answered, but chain anyway.
  let queue = Promise.resolve();
  port.on('message', (msg: HostToWorker) => {
    queue = queue.then(() => handle(msg));
  });

  async function handle(msg: HostToWorker): Promise<void> {
    if (msg.type === 'close') {
      await model.release().catch(() => {});
      send({ type: 'closed' });
      port.close();
      return;
    }
    try {
      switch (msg.type) {
        case 'generate': {
          const result = await generator.generate(msg.prompt, msg.params, {
            aborted: () => Atomics.load(abortFlag, ABORT_SLOT) === msg.id,
            onText: msg.stream ? text => send({ type: 'token', id: msg.id, text }) : undefined,
          });
          send({ type: 'result', id: msg.id, result });
          break;
        }
        case 'logits': {
          const ids = generator.encode(msg.prompt);
          if (ids.length === 0) throw new EngineError('BAD_REQUEST', 'logits() needs a prompt of at least one token', { field: 'prompt' });
          const { logits } = await model.forward(ids, model.prefix);
          send({ type: 'logits', id: msg.id, logits, ids }, [logits.buffer as ArrayBuffer]);
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
  }
}

void main();
