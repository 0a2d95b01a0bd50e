// The services the commands, the panel bridge and the completion provider share: built once by
// activate() (src/extension.ts) and handed around as one object.

import type * as vscode from 'vscode';
import type { RepairPanelProvider } from '../panel/provider';
import type { Settings } from '../settings';
import type { CaptureService } from './capture';
import type { ModelService } from './model-service';
import type { RepairService } from './repair-service';

export interface Services {
  context: vscode.ExtensionContext;
  output: vscode.OutputChannel;
  log(line: string): void;
  settings(): Settings;
  model: ModelService;
  repairs: RepairService;
  capture: CaptureService;
  panel: RepairPanelProvider;
  /** Opens the repair panel in the side bar. */
  showPanel(): Promise<void>;
}
