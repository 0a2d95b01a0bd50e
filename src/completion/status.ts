// The status-bar item: which model serves completions, on which execution provider and in which
// weight format, and what it is doing (loading, ready, completing, repairing, error). The tooltip
// adds the size of the weights (worded as the panel words it, panel/messages.ts describeWeights)
// and lists the providers that were tried and why they were not used (with a link to try a
// provider that crashed the worker again); a click turns inline completions on or off.

import * as vscode from 'vscode';
import type { Settings } from '../settings';
import { describeWeights } from '../panel/messages';
import { TRY_PROVIDER_AGAIN, type ModelService } from '../services/model-service';
import { retryLabel } from '../worker/provider-guard';

const ICONS = { loading: '$(loading~spin)', ready: '$(sparkle)', completing: '$(sync~spin)', repairing: '$(tools)', error: '$(error)' } as const;

function md(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, (c) => `\\${c}`);
}

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscriptions: vscode.Disposable[];

  constructor(private readonly model: ModelService, private readonly settings: () => Settings) {
    this.item = vscode.window.createStatusBarItem('starRepair.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'STAR Repair';
    this.item.command = 'starRepair.toggleCompletions';
    this.subscriptions = [model.onDidChange(() => this.update()), model.onDidChangeActivity(() => this.update())];
    this.update();
    this.item.show();
  }

  update(): void {
    const s = this.settings();
    const info = this.model.info;
    const activity = this.model.activity;
    const enabled = s.completions.enabled;
    const name = info ? info.name : 'STAR';
    // What the worker runs on: the provider and format that `auto` resolved to, never 'auto' itself.
    const where = info && activity !== 'error' && activity !== 'loading' ? ` · ${info.executionProvider}${info.weights !== undefined ? ` · ${info.weights}` : ''}` : '';
    const icon = !enabled && activity === 'ready' ? '$(circle-slash)' : ICONS[activity];
    this.item.text = `${icon} ${name}${where}`;
    this.item.backgroundColor = activity === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    const lines: string[] = [];
    lines.push(`**STAR Repair** — ${activity}${enabled ? '' : ' (inline completions off)'}`);
    if (info) {
      lines.push(`Model: ${md(info.name)} (${md(info.architecture)}, ${(info.params / 1e6).toFixed(1)} M parameters, ${info.layers} layers × ${info.neurons} neurons, ${md(info.dtype)})`);
      lines.push(`Execution provider: ${md(info.executionProvider)}`);
      if (info.weights !== undefined) lines.push(`In memory: ${md(describeWeights({ format: info.weights, bytes: info.weightBytes }))}`);
      for (const f of info.fallbacks) lines.push(`- ${md(f.provider)} not used: ${md(f.reason)}`);
      for (const p of this.model.crashedProviders(info.fingerprint)) {
        lines.push(`[${md(retryLabel(p))}](command:${TRY_PROVIDER_AGAIN}?${encodeURIComponent(JSON.stringify([p]))})`);
      }
      const patches = this.model.stores?.patches.active().length ?? 0;
      const pending = this.model.stores?.failures.list({ status: 'pending' }).length ?? 0;
      lines.push(`${patches} patch(es) active · ${pending} failure(s) waiting for review`);
    }
    const w = this.model.worker;
    if (w.status === 'restarting') lines.push(`Model worker restarting (crash ${w.crashes}) in ${Math.round((w.restartInMs ?? 0) / 100) / 10} s`);
    if (w.status === 'failed') lines.push('Model worker stopped after repeated crashes: run "STAR Repair: Restart Model Worker"');
    const err = this.model.errorMessage;
    if (err) lines.push(`Error: ${md(err)}`);
    lines.push(enabled ? 'Click to turn inline completions off' : 'Click to turn inline completions on');
    const tooltip = new vscode.MarkdownString(lines.join('\n\n'));
    tooltip.isTrusted = { enabledCommands: [TRY_PROVIDER_AGAIN] };
    this.item.tooltip = tooltip;
  }

  dispose(): void {
    for (const d of this.subscriptions) d.dispose();
    this.item.dispose();
  }
}
