// The per-model side stores of the extension: patch reports and accepted completions persist
// atomically per fingerprint, are bounded, and a damaged file is moved aside without losing
// the readable entries.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PatchReportStore, RegressionStore, type PatchReport } from '../../src/services/side-stores';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'star-side-'));
  dirs.push(d);
  return d;
};

const report = (id: string): PatchReport => ({
  patchId: id, scoresBefore: { effectiveness: 0, generalisation: null, specificity: null },
  positions: [{ failureId: 'f', token: 'x', pBefore: 0.1, pAfter: 0.9 }], evaluation: null, fixed: ['f'], unfixed: [],
});

test('patch reports round-trip per model and are pruned with the history', () => {
  const dir = temp();
  const a = PatchReportStore.open(dir, 'aaa');
  a.put(report('p1'));
  a.put(report('p2'));
  assert.deepEqual(PatchReportStore.open(dir, 'aaa').get('p1'), report('p1'));
  assert.equal(PatchReportStore.open(dir, 'bbb').get('p1'), undefined, 'another model sees nothing');
  a.retain(['p2']);
  const again = PatchReportStore.open(dir, 'aaa');
  assert.equal(again.get('p1'), undefined);
  assert.ok(again.get('p2'));
});

test('a damaged report file keeps the good entries and reports the rest', () => {
  const dir = temp();
  const s = PatchReportStore.open(dir, 'aaa');
  s.put(report('p1'));
  const doc = JSON.parse(readFileSync(s.file, 'utf8')) as { reports: unknown[] };
  doc.reports.push({ patchId: 'bad', scoresBefore: { effectiveness: 7 } });
  writeFileSync(s.file, JSON.stringify(doc));
  const r = PatchReportStore.open(dir, 'aaa');
  assert.ok(r.get('p1'));
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0], /report #1 is malformed/);
  writeFileSync(s.file, '{ not json');
  const broken = PatchReportStore.open(dir, 'aaa');
  assert.equal(broken.get('p1'), undefined);
  assert.equal(broken.problems.length, 1);
  assert.ok(readdirSync(dir).some((f) => f !== 'reports-aaa.json' && f.startsWith('reports-aaa.json')), 'the damaged file is kept aside');
});

test('accepted completions are a bounded ring, newest kept, persisted', () => {
  const dir = temp();
  const s = RegressionStore.open(dir, 'aaa', 3);
  for (let i = 0; i < 5; i++) s.add({ id: `s${i}`, languageId: 'python', prompt: `p${i}`, completion: `c${i}`, time: new Date(i).toISOString() });
  assert.deepEqual(s.list().map((x) => x.id), ['s2', 's3', 's4']);
  // The same suggestion accepted after being typed through replaces its sample.
  s.add({ id: 's3', languageId: 'python', prompt: 'p3', completion: 'c3 full', time: new Date(9).toISOString() });
  const again = RegressionStore.open(dir, 'aaa', 3);
  assert.deepEqual(again.list().map((x) => [x.id, x.completion]), [['s2', 'c2'], ['s4', 'c4'], ['s3', 'c3 full']]);
});
