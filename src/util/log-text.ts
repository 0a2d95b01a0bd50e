// What goes into the "STAR Repair" Output channel: a time stamp and text without terminal escape
// codes. onnxruntime colours its own warnings (ESC[1;31m … ESC[m) and the worker passes its stderr
// on line by line; VS Code's Output view would print the codes raw.

/** CSI sequences (ESC [ or the 8-bit CSI), OSC strings (ESC ] … BEL or ESC \), and two-byte escapes. */
const ANSI = /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;

/** Removes terminal escape codes; carriage returns become spaces, other control characters (but tabs) go. */
export function stripAnsi(s: string): string {
  return s
    .replace(ANSI, '')
    .replace(/\r/g, ' ')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}

/** One line of the Output channel: UTC time of day (HH:MM:SS.mmm), then the cleaned text. */
export function logLine(text: string, now: Date = new Date()): string {
  return `${now.toISOString().slice(11, 23)} ${stripAnsi(text)}`;
}
