// "Show Log": the STAR Repair output channel (worker messages, captures, repairs, store recovery).

import type { CommandSpec } from './common';

export const showLog: CommandSpec = {
  id: 'starRepair.showLog',
  run: (s) => s.output.show(true),
};
