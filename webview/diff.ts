// The rejected completion against the desired one, for the Failures section: a line-based diff
// (diffLines) whose changed line pairs mark the words that differ (diffWords). Completions are
// short, so a plain LCS table is enough; past a size limit a diff degrades to "all removed, all
// added" rather than taking quadratic time.

export type DiffOp = 'same' | 'removed' | 'added';
export interface DiffPart {
  op: DiffOp;
  text: string;
}

/** Words, runs of whitespace and single punctuation marks, so code diffs line up on identifiers. */
export function tokenizeForDiff(s: string): string[] {
  return s.match(/[\p{L}\p{N}_$]+|\s+|[^\p{L}\p{N}_$\s]/gu) ?? [];
}

const MAX_CELLS = 4_000_000;

/** lcs[i * (b.length + 1) + j] = the length of the longest common subsequence of a[i:] and b[j:]. */
function lcsTable(a: readonly string[], b: readonly string[]): Uint32Array {
  const n = a.length;
  const w = b.length + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * w + j] = a[i] === b[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    }
  }
  return lcs;
}

export function diffWords(before: string, after: string): DiffPart[] {
  const a = tokenizeForDiff(before);
  const b = tokenizeForDiff(after);
  // Common prefix and suffix are cheap and usually most of it.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const parts: DiffPart[] = [];
  const push = (op: DiffOp, text: string): void => {
    if (!text) return;
    const last = parts[parts.length - 1];
    if (last && last.op === op) last.text += text;
    else parts.push({ op, text });
  };
  push('same', a.slice(0, start).join(''));
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const n = midA.length;
  const m = midB.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) {
    push('removed', midA.join(''));
    push('added', midB.join(''));
  } else {
    const w = m + 1;
    const lcs = lcsTable(midA, midB);
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (midA[i] === midB[j]) {
        push('same', midA[i]);
        i++;
        j++;
      } else if (lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
        push('removed', midA[i++]);
      } else {
        push('added', midB[j++]);
      }
    }
    while (i < n) push('removed', midA[i++]);
    while (j < m) push('added', midB[j++]);
  }
  push('same', a.slice(endA).join(''));
  return parts;
}

// --- Lines -------------------------------------------------------------------------------

/** One line of a unified diff; `parts` mark the words that differ from its paired line. */
export interface DiffLine {
  op: DiffOp;
  /** For 'removed' lines only 'same' and 'removed' parts, for 'added' only 'same' and 'added'. */
  parts: DiffPart[];
  /** The line ended with a line break (shown as ⏎, since completions differ by one). */
  eol: boolean;
}

function splitLines(s: string): { text: string; eol: boolean }[] {
  if (s === '') return [];
  const raw = s.split('\n');
  const lines = raw.map((text, i) => ({ text, eol: i < raw.length - 1 }));
  // "a\n" is one line with a break, not a line and an empty one.
  if (lines.length > 1 && lines[lines.length - 1].text === '') lines.pop();
  return lines;
}

const visible = (t: string): number => t.replace(/\s+/g, '').length;

/** Two lines are worth marking word by word when at least 40% of the longer one is shared. */
function related(words: DiffPart[]): boolean {
  let same = 0;
  let removed = 0;
  let added = 0;
  for (const p of words) {
    const n = visible(p.text);
    if (p.op === 'same') same += n;
    else if (p.op === 'removed') removed += n;
    else added += n;
  }
  return same > 0 && same >= 0.4 * (same + Math.max(removed, added));
}

const lineKey = (l: { text: string; eol: boolean }): string => `${l.eol ? '1' : '0'}${l.text}`;

/**
 * A line-based diff of `before` → `after`, the way a code review shows it: unchanged lines once,
 * then the removed lines, then the added lines, each pair of changed lines with the words that
 * differ marked. Both texts can be read back whole: the 'same' and 'removed' lines give `before`,
 * the 'same' and 'added' lines give `after`.
 */
export function diffLines(before: string, after: string): DiffLine[] {
  const a = splitLines(before);
  const b = splitLines(after);
  const ka = a.map(lineKey);
  const kb = b.map(lineKey);
  const n = a.length;
  const m = b.length;
  const out: DiffLine[] = [];
  const pending: { removed: typeof a; added: typeof b } = { removed: [], added: [] };
  const flush = (): void => {
    const { removed, added } = pending;
    const pairs = Math.min(removed.length, added.length);
    const rem: DiffLine[] = [];
    const add: DiffLine[] = [];
    for (let i = 0; i < Math.max(removed.length, added.length); i++) {
      const words = i < pairs ? diffWords(removed[i].text, added[i].text) : [];
      if (i < pairs && related(words)) {
        rem.push({ op: 'removed', parts: words.filter((p) => p.op !== 'added'), eol: removed[i].eol });
        add.push({ op: 'added', parts: words.filter((p) => p.op !== 'removed'), eol: added[i].eol });
      } else {
        if (i < removed.length) rem.push({ op: 'removed', parts: removed[i].text ? [{ op: 'removed', text: removed[i].text }] : [], eol: removed[i].eol });
        if (i < added.length) add.push({ op: 'added', parts: added[i].text ? [{ op: 'added', text: added[i].text }] : [], eol: added[i].eol });
      }
    }
    out.push(...rem, ...add);
    pending.removed = [];
    pending.added = [];
  };
  if ((n + 1) * (m + 1) > MAX_CELLS) {
    pending.removed = a;
    pending.added = b;
    flush();
    return out;
  }
  const w = m + 1;
  const lcs = lcsTable(ka, kb);
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && ka[i] === kb[j]) {
      flush();
      out.push({ op: 'same', parts: a[i].text ? [{ op: 'same', text: a[i].text }] : [], eol: a[i].eol });
      i++;
      j++;
    } else if (j >= m || (i < n && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
      pending.removed.push(a[i++]);
    } else {
      pending.added.push(b[j++]);
    }
  }
  flush();
  return out;
}
