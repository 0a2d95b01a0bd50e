// "Show Repair Panel": reveals the panel's view in the side bar.

import type { CommandSpec } from './common';

export const showPanel: CommandSpec = {
  id: 'starRepair.showPanel',
  run: (s) => s.showPanel(),
};
