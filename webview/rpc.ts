// The webview end of src/protocol/messages.ts: typed requests with ids, a promise per request, and
// notification handlers. acquireVsCodeApi may be called once per page, so this module owns it.
import {
  isHostMessage, type HostError, type HostNotificationMap, type RequestMethod, type RequestParams, type RequestResult,
  type WebviewToHost,
} from '../src/protocol/messages';
import type { TrainingConfig } from '../src/protocol/config';
import { StudioError } from '../src/protocol/errors';

interface VsCodeApi { postMessage(msg: unknown): void; getState(): unknown; setState(state: unknown): void }
declare function acquireVsCodeApi(): VsCodeApi;

export const vscode: VsCodeApi = acquireVsCodeApi();

/** A failed request: the host's message, hint and field issues. */
export class RequestError extends StudioError {
  constructor(readonly error: HostError) { super(error.code ?? 'internal', error.message, error.hint); }
}

type Handlers = { [M in keyof HostNotificationMap]?: Array<(params: HostNotificationMap[M]) => void> };
const handlers: Handlers = {};
const pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
let nextId = 1;

export function request<M extends RequestMethod>(method: M, params: RequestParams<M>): Promise<RequestResult<M>> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    send({ kind: 'request', id, method, params } as WebviewToHost);
  });
}

export function on<M extends keyof HostNotificationMap>(method: M, handler: (params: HostNotificationMap[M]) => void): void {
  ((handlers[method] ??= []) as Array<(p: HostNotificationMap[M]) => void>).push(handler);
}

export function notifyReady(): void { send({ kind: 'notify', method: 'ready' }); }
export function notifyDraft(config: TrainingConfig): void { send({ kind: 'notify', method: 'draft', params: { config } }); }

function send(msg: WebviewToHost): void { vscode.postMessage(msg); }

window.addEventListener('message', (e: MessageEvent) => {
  const msg = e.data;
  if (!isHostMessage(msg)) return;
  if (msg.kind === 'response') {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result); else p.reject(new RequestError(msg.error));
    return;
  }
  for (const h of (handlers[msg.method] ?? []) as Array<(p: unknown) => void>) {
    try { h(msg.params); } catch (err) { console.error(`dashboard: ${msg.method} handler failed`, err); }
  }
});
