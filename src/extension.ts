// activate(): builds the services (model worker, stores, repairs, capture of rejected
// completions, panel) and registers them with VS Code — nothing else lives here.

import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { registerInlineCompletions, StarInlineCompletionProvider } from './completion/provider';
import { StatusBar } from './completion/status';
import { registerRepairPanel, RepairPanelProvider } from './panel/provider';
import { CaptureService } from './services/capture';
import { affectsModel, readSettings } from './services/config';
import { ModelService } from './services/model-service';
import { PanelBridge } from './services/panel-bridge';
import { RepairService } from './services/repair-service';
import type { Services } from './services/services';
import { logLine } from './util/log-text';
import { openWalkthroughOnFirstRun, setHasFailures } from './walkthrough';

/** What activate() returns (vscode.extensions.getExtension(...).exports): the services and the completion provider, for the integration tests. */
export interface ExtensionApi extends Services {
  completions: StarInlineCompletionProvider;
}

let shutdown: (() => Promise<void>) | null = null;

export function activate(context: vscode.ExtensionContext): ExtensionApi {
  const output = vscode.window.createOutputChannel('STAR Repair');
  // Every line, the worker's stderr included, without onnxruntime's terminal colour codes.
  const log = (line: string) => output.appendLine(logLine(line));
  const settings = () => readSettings().settings;
  for (const p of readSettings().problems) log(`[settings] ${p}`);

  // Settings reach every service one way: injected as this function (the model connection also hears what workspace trust held back).
  const model = new ModelService(context, log, readSettings);
  const repairs = new RepairService(model, log, settings);
  const capture = new CaptureService(model, repairs, log, settings);
  const panel = registerRepairPanel(context, log);
  const services: Services = {
    context, output, log, settings, model, repairs, capture, panel,
    showPanel: async () => {
      await vscode.commands.executeCommand(`${RepairPanelProvider.viewType}.focus`);
    },
  };
  const status = new StatusBar(model, settings);
  const completions = new StarInlineCompletionProvider(model, capture, settings, log);
  context.subscriptions.push(
    output, repairs, capture, status,
    new PanelBridge(services),
    registerInlineCompletions(completions, capture),
    registerCommands(services),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('starRepair')) return;
      for (const p of readSettings().problems) log(`[settings] ${p}`);
      status.update();
      if (affectsModel(e)) void model.reload();
    }),
    // A model folder set by the workspace becomes usable once the user trusts it.
    vscode.workspace.onDidGrantWorkspaceTrust(() => void model.reload()),
  );
  shutdown = async () => {
    capture.flush();
    await model.dispose();
  };
  // The walkthrough's "Reject one" step completes once a failure exists.
  const markFailures = () => setHasFailures((model.stores?.failures.list().length ?? 0) > 0);
  context.subscriptions.push(capture.onDidCapture(() => setHasFailures(true)), model.onDidLoad(markFailures));
  openWalkthroughOnFirstRun(context, log);
  void model.start();
  return { ...services, completions };
}

export async function deactivate(): Promise<void> {
  await shutdown?.();
  shutdown = null;
}
