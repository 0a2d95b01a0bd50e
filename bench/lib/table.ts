// Markdown tables and number formatting for benchmark reports.

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const bad = rows.findIndex((r) => r.length !== header.length);
  if (bad >= 0) throw new RangeError(`table row ${bad} has ${rows[bad].length} cells, the header has ${header.length}`);
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const line = (cells: readonly string[]) => `| ${cells.map(esc).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Milliseconds as "812 ms" or "3.41 s". */
export function fmtMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

/** Bytes in decimal gigabytes (the unit bandwidths are quoted in). */
export function fmtGB(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

export function fmtRatio(r: number): string {
  return `${r.toFixed(2)}×`;
}
