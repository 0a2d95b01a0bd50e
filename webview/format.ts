// How numbers, sizes, durations and times read in the panel. Pure, so it is unit-tested in Node.

/** 1234 → "1.23 k", 124_000_000 → "124 M": parameter and neuron counts. */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, unit] of units) {
    if (abs >= size) return `${trim3(n / size)} ${unit}`;
  }
  return String(n);
}

/** Three significant digits without trailing zeros. */
function trim3(x: number): string {
  return String(Number(x.toPrecision(3)));
}

export function formatPercent(p: number): string {
  const v = p * 100;
  if (v !== 0 && Math.abs(v) < 0.1) return `${v.toExponential(1)}%`;
  return `${v.toFixed(1)}%`;
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const min = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${min} min ${s} s`;
}

/** Loss values span orders of magnitude as a repair converges. */
export function formatLoss(loss: number | null): string {
  if (loss === null) return '—';
  if (loss !== 0 && (Math.abs(loss) < 1e-3 || Math.abs(loss) >= 1e4)) return loss.toExponential(3);
  return loss.toFixed(4);
}

/** Three significant digits: norms are compared by size, not read to the last decimal. */
export function formatNorm(x: number): string {
  if (x === 0) return '0';
  if (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e4) return x.toExponential(2);
  return x.toPrecision(3);
}

/** "just now", "5 min ago", "3 h ago", else the local date and time. */
export function formatTime(iso: string, now: number = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (s >= 0 && s < 45) return 'just now';
  if (s >= 0 && s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s >= 0 && s < 86_400) return `${Math.round(s / 3600)} h ago`;
  const d = new Date(t);
  const pad = (x: number): string => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Makes whitespace inside a token visible: completions differ by a space or a newline. */
export function showToken(token: string): string {
  return token.replace(/\n/g, '⏎').replace(/\t/g, '⇥').replace(/ /g, '·') || '∅';
}

/** The last `max` characters, marked as cut when cut. */
export function tail(s: string, max: number): string {
  return s.length <= max ? s : `…${s.slice(s.length - max)}`;
}

/** The file name of a URI string, for compact labels. */
export function baseName(uri: string): string {
  const path = uri.split(/[?#]/, 1)[0] ?? uri;
  const name = path.slice(path.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(name) || uri;
  } catch {
    return name || uri;
  }
}
