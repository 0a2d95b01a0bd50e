// What a benchmark ran on: CPU model and cores (from lscpu where it exists), memory, Node and
// onnxruntime-node versions, load average, the process's peak resident set size, and how much
// CPU other processes took while a benchmark ran (a shared machine's timings need that caveat).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, availableParallelism } from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  onnxruntime: string;
  platform: string;
  date: string;
}

function lscpuModel(): string | null {
  try {
    const out = execFileSync('lscpu', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /^Model name:\s*(.+)$/m.exec(out);
    return m ? m[1].trim() : null;
  } catch {
    return null;
  }
}

function ortVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): MachineInfo {
  return {
    cpu: lscpuModel() ?? cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    onnxruntime: ortVersion(),
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
}

/** Peak resident set size of this process so far, in bytes (maxRSS is reported in KiB). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** A field of /proc/self/status in bytes (VmHWM, VmRSS), or null where there is no /proc. */
export function procStatusBytes(field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Peak resident set of this process since the last resetPeakRss (VmHWM; unlike getrusage not inherited from the parent); the whole life's peak without /proc. */
export function ownPeakRss(): number {
  return procStatusBytes('VmHWM') ?? peakRssBytes();
}

/** Resets the peak resident set to the current one (Linux: clear_refs 5); false where that is not possible. */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

export function loadAverage1m(): number {
  return loadavg()[0];
}

/** Collects garbage when node runs with --expose-gc, so one phase's garbage is not the next's RSS. */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
}

/**
 * collectGarbage, then waits until the freed memory has left the process: V8 frees the backing
 * stores of dead ArrayBuffers on a background thread after the collection, so the resident size
 * right after gc() still holds them (a 2 GB fp32 model quantised and dropped was still counted).
 * Repeats until the resident size stops falling (at most `rounds` times, 50 ms apart).
 */
export async function settleGarbage(rounds = 8): Promise<void> {
  let last = Infinity;
  for (let i = 0; i < rounds; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 50));
    const now = process.memoryUsage().rss;
    if (now >= last * 0.99) return;
    last = now;
  }
}

export interface CpuSnapshot {
  /** Busy jiffies of the whole machine (/proc/stat), or null where there is no /proc. */
  busyTicks: number | null;
  /** This process's user + system CPU time, microseconds. */
  ownMicros: number;
  wallMs: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ on every Linux that Node supports

function machineBusyTicks(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: busy = all but idle and iowait
    return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
  } catch {
    return null;
  }
}

export function cpuSnapshot(): CpuSnapshot {
  const u = process.cpuUsage();
  return { busyTicks: machineBusyTicks(), ownMicros: u.user + u.system, wallMs: performance.now() };
}

/**
 * Share of the machine's cores (0..1) that other processes kept busy between two snapshots;
 * null where /proc/stat is unavailable.
 */
export function othersCpuShare(from: CpuSnapshot, to: CpuSnapshot, cores: number): number | null {
  if (from.busyTicks === null || to.busyTicks === null) return null;
  const busySeconds = (to.busyTicks - from.busyTicks) / TICKS_PER_SECOND;
  const ownSeconds = (to.ownMicros - from.ownMicros) / 1e6;
  const wallSeconds = (to.wallMs - from.wallMs) / 1000;
  if (wallSeconds <= 0) return null;
  return Math.min(1, Math.max(0, (busySeconds - ownSeconds) / (wallSeconds * cores)));
}
