// The model worker process (bundled as dist/worker.js, started by client.ts with
// child_process.fork): reads requests from the IPC channel, checks them against the protocol,
// runs them through the handler table (WorkerHandlers, implemented by ModelHost), answers with the
// result or a typed error, streams repair progress, and honours cancellation. It exits when its parent goes away, so no orphan keeps the model.
// Forked with STAR_REPAIR_ROLE=provider-check, the same bundle is instead the short-lived child
// that checks a GPU provider before the worker uses it (provider-vetting.ts).

import { ModelHost } from './host';
import { parseHostMessage, PROTOCOL_VERSION, toWireError, type HostMessage, type Method, type ParamsOf, type ResultOf, type WorkerHandlers, type WorkerMessage } from './protocol';
import { isProviderCheckChild, ProviderVetting, serveProviderCheck } from './provider-vetting';

function send(message: WorkerMessage): void {
  if (!process.connected || !process.send) return;
  process.send(message);
}

const log = (message: string) => send({ type: 'log', message });
const host: WorkerHandlers = new ModelHost(log, {
  vetting: new ProviderVetting({ childPath: process.argv[1], execArgv: process.execArgv, log }),
  onProvider: (provider, fingerprint) => send({ type: 'provider', provider, fingerprint }),
});
const running = new Map<number, AbortController>();

/** Runs one request through the handler table: its params were checked against the method by parseHostMessage. */
async function dispatch<M extends Method>(method: M, params: ParamsOf<M>, id: number, signal: AbortSignal): Promise<ResultOf<M>> {
  const handler: WorkerHandlers[M] = host[method];
  return handler.call(host, params, { signal, onProgress: (progress) => send({ type: 'progress', id, progress }) });
}

async function handle(raw: unknown): Promise<void> {
  let message: HostMessage;
  try {
    message = parseHostMessage(raw);
  } catch (e) {
    // A request we cannot read still gets an answer when its id is readable, so the caller is not left waiting.
    const id = typeof raw === 'object' && raw !== null ? (raw as { id?: unknown }).id : undefined;
    if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) send({ type: 'response', id, ok: false, error: toWireError(e) });
    else send({ type: 'log', message: `dropped a malformed message: ${e instanceof Error ? e.message : String(e)}` });
    return;
  }
  if (message.type === 'cancel') {
    running.get(message.id)?.abort();
    return;
  }
  const controller = new AbortController();
  running.set(message.id, controller);
  try {
    // parseHostMessage read the params with the method's own reader.
    const result = await dispatch(message.method, message.params as ParamsOf<Method>, message.id, controller.signal);
    send({ type: 'response', id: message.id, ok: true, result });
  } catch (e) {
    send({ type: 'response', id: message.id, ok: false, error: toWireError(e) });
  } finally {
    running.delete(message.id);
  }
}

if (!process.send) {
  process.stderr.write('dist/worker.js is the STAR Repair model worker: it is started by the extension through child_process.fork, not run by hand\n');
  process.exit(2);
}

if (isProviderCheckChild()) serveProviderCheck();
else serveRequests();

function serveRequests(): void {
  process.on('message', (raw: unknown) => void handle(raw));
  // The extension host went away (closed window, crash): nobody can read our answers.
  process.on('disconnect', () => process.exit(0));
  process.on('uncaughtException', (e) => {
    send({ type: 'log', message: `worker crashed: ${e instanceof Error ? e.stack ?? e.message : String(e)}` });
    process.exit(70);
  });
  process.on('unhandledRejection', (e) => {
    send({ type: 'log', message: `unhandled rejection in the worker: ${e instanceof Error ? e.stack ?? e.message : String(e)}` });
  });
  send({ type: 'ready', pid: process.pid, protocol: PROTOCOL_VERSION });
}
