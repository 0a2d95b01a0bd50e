// Two small per-model stores next to the failure and patch stores, in the same atomic,
// recoverable JSON form: the repair report of each patch (what the panel shows beyond the Patch
// record: desired-token probabilities before/after, scores before, counts) and the regression
// samples (completions the user accepted, newest kept, bounded) that specificity is measured on.
// No vscode: the extension opens them in its global storage, keyed by model fingerprint.

import { writeJsonFileAtomic } from '../store/atomic';
import { InvalidDocumentError, loadDocument, UnsupportedStoreVersionError, type ParsedDocument } from '../store/document';
import { storeFileFor } from '../store/fingerprint-file';
import { isRecord } from '../util/read';
import type { EvaluationCounts, PositionProbabilityReport, ScoresBefore } from '../worker/protocol';

const VERSION = 1;

export interface PatchReport {
  patchId: string;
  scoresBefore: ScoresBefore;
  positions: PositionProbabilityReport[];
  evaluation: EvaluationCounts | null;
  fixed: string[];
  unfixed: string[];
}

export interface RegressionSampleRecord {
  id: string;
  languageId: string;
  prompt: string;
  completion: string;
  /** ISO 8601. */
  time: string;
}

function isProbability(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;
}

function readHeader(raw: unknown, file: string, fingerprint: string, key: string): unknown[] {
  if (!isRecord(raw)) throw new InvalidDocumentError(`expected a JSON object with "version" and "${key}"`);
  if (typeof raw.version !== 'number') throw new InvalidDocumentError('missing numeric "version"');
  if (raw.version > VERSION) throw new UnsupportedStoreVersionError(file, raw.version, VERSION);
  if (raw.modelFingerprint !== fingerprint) throw new InvalidDocumentError(`"modelFingerprint" is ${JSON.stringify(raw.modelFingerprint)}, expected ${fingerprint}`);
  if (!Array.isArray(raw[key])) throw new InvalidDocumentError(`"${key}" must be an array`);
  return raw[key] as unknown[];
}

function scoreOrNull(v: unknown): v is number | null {
  return v === null || isProbability(v);
}

function readReport(v: unknown): PatchReport | null {
  if (!isRecord(v) || typeof v.patchId !== 'string' || v.patchId === '') return null;
  const sb = v.scoresBefore;
  if (!isRecord(sb) || !scoreOrNull(sb.effectiveness) || !scoreOrNull(sb.generalisation) || !scoreOrNull(sb.specificity)) return null;
  if (!Array.isArray(v.positions) || !Array.isArray(v.fixed) || !Array.isArray(v.unfixed)) return null;
  const positions: PositionProbabilityReport[] = [];
  for (const p of v.positions) {
    if (!isRecord(p) || typeof p.failureId !== 'string' || typeof p.token !== 'string' || !isProbability(p.pBefore) || !isProbability(p.pAfter)) return null;
    positions.push({ failureId: p.failureId, token: p.token, pBefore: p.pBefore, pAfter: p.pAfter });
  }
  if (!v.fixed.every((x) => typeof x === 'string') || !v.unfixed.every((x) => typeof x === 'string')) return null;
  return {
    patchId: v.patchId,
    scoresBefore: { effectiveness: sb.effectiveness, generalisation: sb.generalisation, specificity: sb.specificity },
    positions,
    evaluation: isRecord(v.evaluation) ? (v.evaluation as unknown as EvaluationCounts) : null,
    fixed: v.fixed as string[],
    unfixed: v.unfixed as string[],
  };
}

/** Repair reports by patch id. */
export class PatchReportStore {
  private reports: Map<string, PatchReport>;

  private constructor(readonly file: string, readonly modelFingerprint: string, reports: PatchReport[], readonly problems: readonly string[]) {
    this.reports = new Map(reports.map((r) => [r.patchId, r]));
  }

  static open(dir: string, fingerprint: string): PatchReportStore {
    const file = storeFileFor(dir, 'reports', fingerprint);
    const parse = (raw: unknown): ParsedDocument<PatchReport[]> => {
      const value: PatchReport[] = [];
      const dropped: string[] = [];
      readHeader(raw, file, fingerprint, 'reports').forEach((r, i) => {
        const report = readReport(r);
        if (report) value.push(report);
        else dropped.push(`report #${i} is malformed`);
      });
      return { value, dropped };
    };
    const loaded = loadDocument(file, parse, () => []);
    return new PatchReportStore(file, fingerprint, loaded.value, loaded.problems);
  }

  get(patchId: string): PatchReport | undefined {
    return this.reports.get(patchId);
  }

  put(report: PatchReport): void {
    const next = new Map(this.reports);
    next.set(report.patchId, report);
    this.commit(next);
  }

  /** Keeps only the reports of patches still in the history. */
  retain(patchIds: readonly string[]): void {
    const keep = new Set(patchIds);
    if ([...this.reports.keys()].every((id) => keep.has(id))) return;
    this.commit(new Map([...this.reports].filter(([id]) => keep.has(id))));
  }

  private commit(next: Map<string, PatchReport>): void {
    writeJsonFileAtomic(this.file, { version: VERSION, modelFingerprint: this.modelFingerprint, reports: [...next.values()] });
    this.reports = next;
  }
}

/** Accepted completions, newest last, at most `limit`. */
export class RegressionStore {
  private samples: RegressionSampleRecord[];

  private constructor(readonly file: string, readonly modelFingerprint: string, samples: RegressionSampleRecord[], readonly limit: number, readonly problems: readonly string[]) {
    this.samples = samples.slice(-limit);
  }

  static open(dir: string, fingerprint: string, limit = 200): RegressionStore {
    const file = storeFileFor(dir, 'regression', fingerprint);
    const parse = (raw: unknown): ParsedDocument<RegressionSampleRecord[]> => {
      const value: RegressionSampleRecord[] = [];
      const dropped: string[] = [];
      readHeader(raw, file, fingerprint, 'samples').forEach((s, i) => {
        if (isRecord(s) && typeof s.id === 'string' && typeof s.languageId === 'string' && typeof s.prompt === 'string' && s.prompt !== '' &&
          typeof s.completion === 'string' && s.completion !== '' && typeof s.time === 'string') {
          value.push({ id: s.id, languageId: s.languageId, prompt: s.prompt, completion: s.completion, time: s.time });
        } else {
          dropped.push(`sample #${i} is malformed`);
        }
      });
      return { value, dropped };
    };
    const loaded = loadDocument(file, parse, () => []);
    return new RegressionStore(file, fingerprint, loaded.value, Math.max(1, Math.floor(limit)), loaded.problems);
  }

  list(): RegressionSampleRecord[] {
    return this.samples.map((s) => ({ ...s }));
  }

  get size(): number {
    return this.samples.length;
  }

  /** Adds a sample (replacing one with the same id), dropping the oldest beyond the limit. */
  add(sample: RegressionSampleRecord): void {
    const next = [...this.samples.filter((s) => s.id !== sample.id), { ...sample }].slice(-this.limit);
    writeJsonFileAtomic(this.file, { version: VERSION, modelFingerprint: this.modelFingerprint, samples: next });
    this.samples = next;
  }
}
