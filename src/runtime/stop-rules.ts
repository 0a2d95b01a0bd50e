// Where an inline completion ends: 'line' at the end of the cursor's line, 'block' at a blank
// line or at a line indented less than the line the cursor is on (a dedent closes the block).
// Pure text rules, applied while decoding (runtime/completion.ts) so it stops as soon as the end is known,
// and when a failure's target is built (repair/teacher.ts), so both agree on where a completion ends.

export const STOP_RULES = ['line', 'block', 'none'] as const;
export type StopRule = (typeof STOP_RULES)[number];
/** The rules a user picks for the editor's completions (starRepair.completions.stop); 'none' is for tools and tests. */
export const COMPLETION_STOPS = ['line', 'block'] as const satisfies readonly StopRule[];
export type CompletionStop = (typeof COMPLETION_STOPS)[number];

/** Leading spaces/tabs of the prompt's last line: the indentation the completion continues at. */
export function cursorLineIndent(prompt: string): string {
  const line = prompt.slice(prompt.lastIndexOf('\n') + 1);
  return /^[ \t]*/.exec(line)![0];
}

function indentWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    if (ch === ' ') w++;
    else if (ch === '\t') w += 4;
    else break;
  }
  return w;
}

/**
 * The length the completion `text` keeps under `rule`, or -1 when its end is not known yet.
 * A later line decides the block's end only once it is complete or holds a visible character,
 * because its indentation is not known before that.
 */
export function completionEnd(text: string, rule: StopRule, baseIndent: string): number {
  if (rule === 'none') return -1;
  const nl = text.indexOf('\n');
  if (rule === 'line') return nl;
  if (nl < 0) return -1;
  const base = indentWidth(baseIndent);
  let start = nl + 1;
  let prevEnd = nl;
  for (;;) {
    const next = text.indexOf('\n', start);
    const line = next < 0 ? text.slice(start) : text.slice(start, next);
    const complete = next >= 0;
    const visible = /\S/.test(line);
    if (visible) {
      if (indentWidth(line) < base) return prevEnd;
    } else if (complete) {
      return prevEnd;
    }
    if (!complete) return -1;
    prevEnd = next;
    start = next + 1;
  }
}

/** The completion as shown: cut at its end and without trailing whitespace on the last line. */
export function finishCompletion(text: string, rule: StopRule, baseIndent: string): string {
  const end = completionEnd(text, rule, baseIndent);
  return trimShownEnd(end >= 0 ? text.slice(0, end) : text);
}

/** What the editor drops from the end of a completion: trailing blanks of the last line, then trailing line breaks. */
export function trimShownEnd(text: string): string {
  return text.replace(/[ \t]+$/, '').replace(/\n+$/, '');
}
