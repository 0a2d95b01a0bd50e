// Integration tests inside a real VS Code (run by run-test.ts): activation, every contributed
// command registered and runnable on the llama fixture model, the inline completion provider
// returning an item, and capture of a rejected completion from real editor edits.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, suiteSetup, suiteTeardown, test } from 'mocha';
import * as vscode from 'vscode';
import type { ExtensionApi } from '../../../src/extension';
import type { RepairSummary } from '../../../src/services/repair-service';

const ROOT = process.env['STAR_IT_ROOT'] ?? join(__dirname, '..', '..', '..');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'models', 'llama');
const EXTENSION_ID = 'star-repair.star-repair';
const PROMPT = 'def f(n):\n    return';
const DESIRED = ' n + 1';

async function until<T>(what: string, probe: () => T | undefined | null | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const config = () => vscode.workspace.getConfiguration('starRepair');

suite('STAR Repair extension', () => {
  let api: ExtensionApi;
  const temp = mkdtempSync(join(tmpdir(), 'star-it-'));

  suiteSetup(async () => {
    // The fixture model instead of the embedded one; completions right away.
    await config().update('modelPath', FIXTURE, vscode.ConfigurationTarget.Global);
    await config().update('completions.debounceMs', 0, vscode.ConfigurationTarget.Global);
    await config().update('repair.mode', 'batch', vscode.ConfigurationTarget.Global);
    await config().update('repair.eta', 1, vscode.ConfigurationTarget.Global);
    await config().update('repair.epochs', 20, vscode.ConfigurationTarget.Global);
    await config().update('specificity.guard', 'off', vscode.ConfigurationTarget.Global);
    const ext = vscode.extensions.getExtension<ExtensionApi>(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} is installed for development`);
    api = await ext.activate();
    await until('the model to load', () => api.model.ready);
  });

  suiteTeardown(() => rmSync(temp, { recursive: true, force: true }));

  test('activates, loads the configured model in the worker and opens its stores', () => {
    assert.equal(api.model.info?.dir, FIXTURE);
    assert.equal(api.model.info?.architecture, 'LlamaForCausalLM');
    assert.ok(api.model.stores, 'stores are open for the model fingerprint');
    assert.equal(api.model.stores.fingerprint, api.model.info.fingerprint);
    assert.ok(api.model.connection.pid);
  });

  test('every command of package.json is registered', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { contributes: { commands: { command: string }[] } };
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const { command } of pkg.contributes.commands) assert.ok(registered.has(command), `${command} is registered`);
    assert.ok(registered.has('starRepair.completionAccepted'));
  });

  test('the inline completion provider returns an item from the worker', async () => {
    const doc = await vscode.workspace.openTextDocument({ language: 'python', content: PROMPT });
    const pos = doc.positionAt(PROMPT.length);
    const cts = new vscode.CancellationTokenSource();
    const items = await api.completions.provideInlineCompletionItems(doc, pos, { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined }, cts.token);
    // Invoke (Alt+\\) may return alternatives to cycle through; the first is the greedy completion.
    assert.ok(items && items.length >= 1 && items.length <= 3, 'one to three items');
    assert.equal(typeof items[0].insertText, 'string');
    assert.ok((items[0].insertText as string).length > 0);
    assert.equal(items[0].command?.command, 'starRepair.completionAccepted');
    // A language outside starRepair.completions.languages gets nothing.
    const md = await vscode.workspace.openTextDocument({ language: 'markdown', content: '# title\n' });
    assert.equal(await api.completions.provideInlineCompletionItems(md, md.positionAt(8), { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined }, cts.token), undefined);
    // A cancelled request returns nothing.
    cts.cancel();
    assert.equal(await api.completions.provideInlineCompletionItems(doc, pos, { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined }, cts.token), undefined);
  });

  test('a rejected completion is captured as a pending failure from real edits', async () => {
    const doc = await vscode.workspace.openTextDocument({ language: 'python', content: `${PROMPT}\n\nx = 1\n` });
    const editor = await vscode.window.showTextDocument(doc);
    const pos = doc.positionAt(PROMPT.length);
    editor.selection = new vscode.Selection(pos, pos);
    const items = await api.completions.provideInlineCompletionItems(doc, pos, { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined }, new vscode.CancellationTokenSource().token);
    assert.ok(items?.length);
    const before = api.model.stores!.failures.size;
    await editor.edit((b) => b.insert(pos, ' n * 2'));
    // Leaving the line finishes it: what the user wrote becomes the desired text.
    const away = new vscode.Position(3, 0);
    editor.selection = new vscode.Selection(away, away);
    const f = await until('the captured failure', () => api.model.stores!.failures.size > before && api.model.stores!.failures.list().at(-1));
    assert.equal(f.source, 'rejected');
    assert.equal(f.desired, ' n * 2');
    assert.equal(f.prompt, PROMPT);
    assert.equal(f.status, 'pending');
    assert.equal(f.uri, doc.uri.toString());
  });

  test('Repair Model on This Failure: repairs, records the patch, re-sends patches', async () => {
    const summary = await vscode.commands.executeCommand<RepairSummary | undefined>('starRepair.repairFailure', { prompt: PROMPT, desired: DESIRED, languageId: 'python', confirm: false });
    assert.ok(summary, 'the repair ran');
    assert.equal(summary.fixed.length, 1);
    const entry = api.model.stores!.patches.get(summary.patch.id);
    assert.ok(entry?.enabled);
    assert.equal(api.model.stores!.failures.get(summary.fixed[0].id)?.status, 'repaired');
    assert.ok(api.model.stores!.reports.get(summary.patch.id)?.positions.length);
    const now = await api.model.request('predict', { prompt: PROMPT, desired: DESIRED });
    assert.equal(now.allCorrect, true, 'the committed patch is active in the worker');
  });

  test('Repair All Pending Failures repairs in batch mode', async () => {
    api.model.stores!.failures.add({ prompt: 'def g(x):\n    return', desired: ' x', languageId: 'python', source: 'manual' });
    const summary = await vscode.commands.executeCommand<RepairSummary | undefined>('starRepair.repairAllPending');
    assert.ok(summary);
    assert.equal(summary.patch.mode, 'batch');
    assert.equal(api.model.stores!.failures.list({ status: 'pending' }).length, 0);
  });

  test('Evaluate Patches records fresh scores', async () => {
    const r = await vscode.commands.executeCommand<{ results: { patchId: string; scores: { effectiveness: number | null } }[] } | undefined>('starRepair.evaluatePatches');
    assert.ok(r && r.results.length >= 1);
    for (const x of r.results) assert.deepEqual(api.model.stores!.patches.get(x.patchId)?.patch.scores, x.scores);
  });

  test('Undo Last Patch and Manage Patches (enable, save, import refused for another model)', async () => {
    const undone = await vscode.commands.executeCommand<string | undefined>('starRepair.undoLastPatch');
    assert.ok(undone);
    assert.equal(api.model.stores!.patches.get(undone)?.enabled, false);
    await vscode.commands.executeCommand('starRepair.managePatches', { patchId: undone, action: 'enable' });
    assert.equal(api.model.stores!.patches.get(undone)?.enabled, true);
    const file = join(temp, 'patch.json');
    await vscode.commands.executeCommand('starRepair.managePatches', { patchId: undone, action: 'save', file });
    assert.ok(existsSync(file));
    const foreign = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    foreign.id = 'foreign-patch';
    foreign.modelFingerprint = 'f'.repeat(64);
    writeFileSync(join(temp, 'foreign.json'), JSON.stringify(foreign));
    const imported = await vscode.commands.executeCommand('starRepair.managePatches', { importFile: join(temp, 'foreign.json') });
    assert.equal(imported, undefined, 'a patch for another model is refused');
    assert.equal(api.model.stores!.patches.get('foreign-patch'), undefined);
  });

  test('Export Patched Model writes a loadable checkpoint folder', async () => {
    const dir = join(temp, 'exported');
    const r = await vscode.commands.executeCommand<{ dir: string; neurons: number } | undefined>('starRepair.exportModel', dir);
    assert.ok(r);
    assert.ok(existsSync(join(dir, 'model.safetensors')) && existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'tokenizer.json')));
  });

  test('Toggle Inline Completions flips the setting', async () => {
    const before = config().get<boolean>('completions.enabled');
    await vscode.commands.executeCommand('starRepair.toggleCompletions');
    assert.equal(config().get<boolean>('completions.enabled'), !before);
    await vscode.commands.executeCommand('starRepair.toggleCompletions');
    assert.equal(config().get<boolean>('completions.enabled'), before);
  });

  test('Show Repair Panel, Show Log run', async () => {
    await vscode.commands.executeCommand('starRepair.showPanel');
    await vscode.commands.executeCommand('starRepair.showLog');
    await until('the panel state', () => api.panel.state?.model?.name === api.model.info?.name);
    assert.ok(api.panel.state!.patches.length >= 1);
  });

  test('Restart Model Worker: a new process with the model and the enabled patches loaded again', async () => {
    const pid = api.model.connection.pid;
    const active = api.model.applicablePatches().length;
    assert.ok(active >= 1);
    // What the patched model predicts now (the guard may have disabled a patch: the enabled ones count).
    const before = await api.model.request('predict', { prompt: PROMPT, desired: DESIRED });
    assert.equal(await vscode.commands.executeCommand('starRepair.restartWorker'), true);
    await until('the model after the restart', () => api.model.ready);
    assert.notEqual(api.model.connection.pid, pid);
    const now = await api.model.request('predict', { prompt: PROMPT, desired: DESIRED });
    assert.deepEqual(now, before, 'the patches came back after the restart');
  });

  test('Select Model Folder switches models and keeps failures and patches per model', async () => {
    const fp = api.model.info!.fingerprint;
    const failures = api.model.stores!.failures.size;
    const other = join(ROOT, 'test', 'fixtures', 'models', 'qwen2');
    await vscode.commands.executeCommand('starRepair.selectModelFolder', other);
    await until('the other model', () => api.model.ready && api.model.info?.dir === other && api.model.info);
    assert.notEqual(api.model.info!.fingerprint, fp);
    assert.equal(api.model.stores!.patches.list().length, 0, 'patches of another model are not applied');
    await vscode.commands.executeCommand('starRepair.selectModelFolder', FIXTURE);
    await until('the first model again', () => api.model.ready && api.model.info?.fingerprint === fp);
    assert.equal(api.model.stores!.failures.size, failures);
    assert.ok(api.model.stores!.patches.active().length >= 1);
  });
});
