// Fuzz child (bundled by test/fuzz/build.ts): a store writer that the stores area SIGKILLs at a
// random moment. It adds records without end, now and then marks one of its own records repaired
// (failures) or disabled (patches) and removes another, and writes one line to stdout after each
// change has returned — that line is the acknowledgement the parent holds the store to. Before a
// remove it says "removing <id>": a remove cut short by the kill may or may not have happened.
import * as fs from 'node:fs';
import { FailureStore } from '../../../src/failures/store';
import { PatchStore } from '../../../src/repair/patch-store';
import type { Patch } from '../../../src/repair/patch';

interface Job { kind: 'failures' | 'patches'; dir: string; fingerprint: string; tag: string }

const job = JSON.parse(process.argv[2]!) as Job;

function ack(line: string): void {
  fs.writeSync(1, `${line}\n`);
}

function patch(id: string): Patch {
  return {
    id, modelFingerprint: job.fingerprint, method: 'star', mode: 'batch', options: {}, failureIds: [`f-${id}`],
    createdAt: '2024-03-04T05:06:07.000Z',
    layers: [{ layer: 0, rows: [1, 3], deltas: Float32Array.from([0.5, -1, 2, 0.25]) }],
    scores: { effectiveness: null, generalisation: null, specificity: null },
    stats: { ms: 1, peakRssMb: 2, neurons: 2, params: 4 },
  };
}

ack('ready');
if (job.kind === 'failures') {
  const s = FailureStore.open(job.dir, job.fingerprint);
  for (let i = 0; ; i++) {
    const id = `${job.tag}-${i}`;
    s.add({ id, prompt: `prompt ${id}`, desired: `desired ${i}`, languageId: 'python' });
    ack(`added ${id}`);
    if (i % 5 === 2) {
      s.update(`${job.tag}-${i - 1}`, { status: 'repaired' });
      ack(`updated ${job.tag}-${i - 1}`);
    }
    if (i % 7 === 3) {
      ack(`removing ${job.tag}-${i - 3}`);
      s.remove(`${job.tag}-${i - 3}`);
      ack(`removed ${job.tag}-${i - 3}`);
    }
  }
} else {
  const s = PatchStore.open(job.dir, job.fingerprint, { hiddenSize: 2 });
  for (let i = 0; ; i++) {
    const id = `${job.tag}-${i}`;
    s.add(patch(id));
    ack(`added ${id}`);
    if (i % 5 === 2) {
      s.toggle(`${job.tag}-${i - 1}`, false);
      ack(`updated ${job.tag}-${i - 1}`);
    }
    if (i % 7 === 3) {
      ack(`removing ${job.tag}-${i - 3}`);
      s.remove(`${job.tag}-${i - 3}`);
      ack(`removed ${job.tag}-${i - 3}`);
    }
  }
}
