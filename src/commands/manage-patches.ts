// "Manage Patches": the patch history in a QuickPick — enable/disable, remove, save a patch as a
// JSON file, or import one. An imported patch made for another model is refused and the user is
// told why (PatchMismatchError's message); a malformed one lists its problems.

import * as vscode from 'vscode';
import type { Patch } from '../repair/patch';
import type { PatchEntry } from '../repair/patch-store';
import { patchTitle, pct } from '../services/repair-outcome';
import type { PatchAction as RepairPatchAction } from '../services/repair-service';
import { savePatchAs } from '../services/repair-ui';
import type { Services } from '../services/services';
import { errorText, requireStores, type CommandSpec } from './common';

export type PatchAction = RepairPatchAction | 'save';

export interface ManagePatchesArgs {
  patchId?: string;
  action?: PatchAction;
  /** For action 'save': where to write the JSON file. */
  file?: string;
  /** Import this patch file. */
  importFile?: string;
}

function describePatch(p: Patch): string {
  return `eff ${pct(p.scores.effectiveness)} · gen ${pct(p.scores.generalisation)} · spec ${pct(p.scores.specificity)} · ${p.stats.neurons} neurons · ${(p.stats.ms / 1000).toFixed(1)} s`;
}

/** Applies one action to one patch (RepairService; 'save' asks where unless `file` is given). Returns the entry after it (undefined when removed). */
function applyPatchAction(s: Services, patchId: string, action: PatchAction, file?: string): Promise<PatchEntry | undefined> {
  return action === 'save' ? savePatchAs(s, patchId, file) : s.repairs.applyPatchAction(patchId, action);
}

/** Reads a patch file and adds it to the history when it fits the loaded model; says why not otherwise. */
async function importPatch(s: Services, file: string): Promise<Patch | undefined> {
  let patch: Patch;
  try {
    patch = s.repairs.readPatchFile(file);
  } catch (e) {
    void vscode.window.showErrorMessage(`STAR Repair: the patch in ${file} was not applied: ${errorText(e)}`);
    return undefined;
  }
  await s.repairs.importPatch(patch);
  void vscode.window.showInformationMessage(`STAR Repair: imported and applied the ${patchTitle(patch)} (${describePatch(patch)}).`);
  return patch;
}

interface PatchItem extends vscode.QuickPickItem {
  entry?: PatchEntry;
  importer?: boolean;
}

export const managePatches: CommandSpec = {
  id: 'starRepair.managePatches',
  async run(s, arg) {
    const stores = requireStores(s);
    if (!stores) return undefined;
    const args = (typeof arg === 'object' && arg !== null ? arg : {}) as ManagePatchesArgs;
    try {
      if (args.importFile) return await importPatch(s, args.importFile);
      if (args.patchId && args.action) return await applyPatchAction(s, args.patchId, args.action, args.file);
      const items: PatchItem[] = stores.patches.list().reverse().map((entry) => ({
        label: `${entry.enabled ? '$(pass-filled)' : '$(circle-large-outline)'} ${entry.patch.method} ${entry.patch.mode} · ${entry.patch.failureIds.length} failure(s)`,
        description: new Date(entry.patch.createdAt).toLocaleString(),
        detail: describePatch(entry.patch),
        entry,
      }));
      items.push({ label: '$(folder-opened) Import a patch file…', importer: true });
      const pick = await vscode.window.showQuickPick(items, { title: 'STAR Repair: patches (newest first)', placeHolder: items.length > 1 ? 'Pick a patch to enable, disable, remove or save' : 'No patch yet' });
      if (!pick) return undefined;
      if (pick.importer) {
        const uris = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'STAR patch': ['json'] }, openLabel: 'Import Patch' });
        return uris?.[0] ? await importPatch(s, uris[0].fsPath) : undefined;
      }
      const entry = pick.entry!;
      const actions: { label: string; action: PatchAction | 'panel' }[] = [
        { label: entry.enabled ? '$(debug-pause) Disable' : '$(play) Enable', action: 'toggle' },
        { label: '$(trash) Remove from the history', action: 'remove' },
        { label: '$(save) Save as a JSON file…', action: 'save' },
        { label: '$(layout-sidebar-left) Show in the panel', action: 'panel' },
      ];
      const act = await vscode.window.showQuickPick(actions, { title: patchTitle(entry.patch) });
      if (!act) return undefined;
      if (act.action === 'panel') return s.showPanel();
      if (act.action === 'remove') {
        const ok = await vscode.window.showWarningMessage('Remove this patch from the history? This cannot be undone.', { modal: true }, 'Remove');
        if (ok !== 'Remove') return undefined;
      }
      return await applyPatchAction(s, entry.patch.id, act.action);
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: ${errorText(e)}`);
      return undefined;
    }
  },
};
