// `star-repair info | complete | logits`: the model runtime from the command line.

import { readFileSync } from 'node:fs';
import { describeFim, FIM_ORDER_SETTINGS, FIM_SETTINGS, resolveFim, type FimOrderSetting, type FimSetting } from '../runtime/fim';
import { generate } from '../runtime/generate';
import { openModel } from '../runtime/open';
import { intFlag, print, UsageError, type Command } from './common';

export const modelCommands: Record<string, Command> = {
  info: {
    summary: 'describe a model folder and the execution provider it runs on',
    usage: 'star-repair info [<modelDir>] [--json] [--ep auto|cpu|webgpu|cuda] [--weights auto|fp32|int8|int4]',
    options: {},
    async run(dir, flags, rt) {
      const { folder, runtime, weights } = openModel(dir, rt);
      await runtime.warm(['decode']);
      const c = folder.config;
      const info = {
        name: folder.name,
        architecture: c.architecture,
        layers: c.layers,
        hidden: c.hidden,
        neurons: c.intermediate,
        vocab: c.vocab,
        context: c.maxPositions,
        params: folder.params,
        dtype: folder.dtype,
        executionProvider: runtime.provider,
        fallbacks: runtime.fallbacks,
        /** The format the model runs in (--weights) and the bytes of those weights in memory. */
        weights,
        weightBytes: runtime.weightBytes,
        fingerprint: folder.fingerprint,
        /** The FIM format of the tokenizer (runtime/fim.ts), or null: prefix-only prompts. */
        fim: describeFim(folder.tokenizer),
      };
      print(flags, info, () =>
        [
          `${info.name}: ${info.architecture}, ${info.layers} layers × ${info.neurons} neurons, hidden ${info.hidden}, vocab ${info.vocab}, context ${info.context}`,
          `${(info.params / 1e6).toFixed(2)} M parameters (${info.dtype}), running on ${info.executionProvider} with ${info.weights} weights (${(info.weightBytes / 1e6).toFixed(1)} MB)`,
          ...info.fallbacks.map((f) => `  (${f.provider} not used: ${f.reason})`),
          info.fim ? `fill-in-the-middle: ${info.fim.family} (${info.fim.tokens.join(' ')}; ${info.fim.orders.join(', ')})` : 'fill-in-the-middle: none (the tokenizer has no FIM tokens; prompts are the text before the cursor)',
          `fingerprint ${info.fingerprint}`,
        ].join('\n'),
      );
      await runtime.release();
      return info;
    },
  },
  complete: {
    summary: 'complete a prompt with the model (greedy unless --temperature)',
    usage: 'star-repair complete [<modelDir>] (--prompt TEXT | --prompt-file F) [--suffix TEXT | --suffix-file F] [--fim auto|off|qwen|starcoder|codellama|deepseek] [--fim-order auto|psm|spm] [--max-tokens N] [--temperature T] [--top-p P] [--stop-line] [--no-heal] [--json]',
    options: { prompt: { type: 'string' }, 'prompt-file': { type: 'string' }, suffix: { type: 'string' }, 'suffix-file': { type: 'string' }, fim: { type: 'string' }, 'fim-order': { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'stop-line': { type: 'boolean' }, 'no-heal': { type: 'boolean' }, seed: { type: 'string' } },
    async run(dir, flags, rt) {
      const prompt = typeof flags.prompt === 'string' ? flags.prompt : typeof flags['prompt-file'] === 'string' ? readFileSync(flags['prompt-file'], 'utf8') : undefined;
      if (prompt === undefined) throw new UsageError('give the text to complete with --prompt TEXT or --prompt-file F');
      const suffix = typeof flags.suffix === 'string' ? flags.suffix : typeof flags['suffix-file'] === 'string' ? readFileSync(flags['suffix-file'], 'utf8') : undefined;
      const fimFlag = typeof flags.fim === 'string' ? flags.fim : 'auto';
      const orderFlag = typeof flags['fim-order'] === 'string' ? flags['fim-order'] : 'auto';
      if (!(FIM_SETTINGS as readonly string[]).includes(fimFlag)) throw new UsageError(`--fim must be one of ${FIM_SETTINGS.join(', ')}`);
      if (!(FIM_ORDER_SETTINGS as readonly string[]).includes(orderFlag)) throw new UsageError(`--fim-order must be one of ${FIM_ORDER_SETTINGS.join(', ')}`);
      const { folder, runtime } = openModel(dir, rt);
      // The suffix goes into the prompt only with FIM tokens; without them the completion sees the prefix alone.
      const fim = suffix !== undefined ? resolveFim(folder.tokenizer, fimFlag as FimSetting, orderFlag as FimOrderSetting) : null;
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      const g = await generate(runtime, folder.tokenizer, prompt, {
        maxTokens: intFlag(flags, 'max-tokens', 32),
        temperature: flags.temperature ? Number(flags.temperature) : 0,
        topP: flags['top-p'] ? Number(flags['top-p']) : 1,
        seed: intFlag(flags, 'seed', 0),
        stop: flags['stop-line'] ? ['\n'] : [],
        heal: !flags['no-heal'],
        signal: abort.signal,
        suffix,
        fim,
      });
      const decodeMs = g.ms - g.prefillMs;
      const result = {
        completion: g.text,
        tokens: g.tokens.length - g.healingTokens,
        healed: g.healed,
        promptTokens: g.promptTokens,
        fim,
        stoppedBy: g.stoppedBy,
        ms: Math.round(g.ms),
        prefillMs: Math.round(g.prefillMs),
        tokensPerSecond: g.tokens.length > 1 ? (g.tokens.length - 1) / (decodeMs / 1000) : null,
        executionProvider: runtime.provider,
      };
      print(flags, result, () => g.text);
      await runtime.release();
      return result;
    },
  },
  logits: {
    summary: 'token ids of a text and the top-K next tokens with their logits',
    usage: 'star-repair logits [<modelDir>] --text TEXT [--top K] --json',
    options: { text: { type: 'string' }, top: { type: 'string' } },
    async run(dir, flags, rt) {
      if (typeof flags.text !== 'string' || flags.text === '') throw new UsageError('give the text with --text TEXT');
      const { folder, runtime } = openModel(dir, rt);
      const ids = folder.tokenizer.encode(flags.text);
      if (ids.length > folder.config.maxPositions) throw new UsageError(`the text is ${ids.length} tokens, longer than the model's context of ${folder.config.maxPositions}`);
      const { logits } = await runtime.decode(ids);
      const k = Math.min(intFlag(flags, 'top', 10), logits.length);
      const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]).slice(0, k);
      const result = { ids, top: order.map((id) => ({ id, token: folder.tokenizer.tokenText(id), logit: logits[id] })) };
      print(flags, result, () => [`ids: ${ids.join(' ')}`, ...result.top.map((t) => `${t.logit.toFixed(4).padStart(10)}  ${t.id}  ${JSON.stringify(t.token)}`)].join('\n'));
      await runtime.release();
      return result;
    },
  },
};

