// The `star-repair` command line: the same model runtime and repair engine as the extension,
// without VS Code. Each command prints human text, or JSON with --json; errors exit with code 1
// (2 for usage errors) and a message that says what to do.

import { parseArgs } from 'node:util';
import { errorText } from './model/errors';
import { PROVIDERS, type ProviderName } from './runtime/providers';
import { isWeightSetting, WEIGHT_SETTINGS } from './runtime/weight-formats';
import { commonOptions, exitAfterOutput, intFlag, tolerateClosedOutput, UsageError, type Command, type Flags } from './cli/common';
import { modelCommands } from './cli/model-commands';
import { repairCommands } from './cli/repair-commands';
import { benchCommand } from './cli/bench-command';

const commands: Record<string, Command> = { ...modelCommands, ...repairCommands, bench: benchCommand };

function usage(): string {
  return ['usage: star-repair <command> [<modelDir>] [options]', '', ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`), '', 'Every command takes --ep auto|cpu|webgpu|cuda|dml|coreml, --threads N, --weights auto|fp32|int8|int4 (default fp32; auto: int8 on the CPU) and --json.', 'Without <modelDir> the embedded model (models/tiny-coder) is used.'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 1;
  }
  const command = commands[name];
  try {
    if (!command) throw new UsageError(`unknown command '${name}'\n\n${usage()}`);
    const { values, positionals } = parseArgs({ args: rest, options: { ...commonOptions, ...command.options }, allowPositionals: true, strict: true });
    const flags = values as Flags;
    if (flags.help) {
      process.stdout.write(command.usage + '\n');
      return 0;
    }
    if (positionals.length > 1) throw new UsageError(`too many arguments: ${positionals.join(' ')}\n${command.usage}`);
    const ep = (flags.ep ?? 'cpu') as ProviderName;
    if (!PROVIDERS.includes(ep)) throw new UsageError(`--ep must be one of ${PROVIDERS.join(', ')}`);
    const weights = flags.weights ?? 'fp32';
    if (!isWeightSetting(weights)) throw new UsageError(`--weights must be one of ${WEIGHT_SETTINGS.join(', ')}`);
    await command.run(positionals[0], flags, { provider: ep, threads: intFlag(flags, 'threads', 0), weights });
    return 0;
  } catch (e) {
    const message = e instanceof UsageError ? e.message : errorText(e);
    process.stderr.write(`star-repair: ${message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

if (require.main === module) {
  tolerateClosedOutput();
  void main(process.argv.slice(2)).then(exitAfterOutput);
}
