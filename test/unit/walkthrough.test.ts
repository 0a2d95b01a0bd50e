// The first-run walkthrough (package.json contributes.walkthroughs, issue 18 item 6): its five
// steps in order, every media file shipped, and every command it links to or waits for exists.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const root = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  activationEvents: string[];
  contributes: {
    commands: { command: string }[];
    walkthroughs: { id: string; title: string; steps: { id: string; title: string; description: string; media: { markdown?: string; image?: string }; completionEvents: string[] }[] }[];
  };
};

test('one walkthrough: model, completion, reject, repair, panel', () => {
  const [w] = pkg.contributes.walkthroughs;
  assert.equal(pkg.contributes.walkthroughs.length, 1);
  assert.equal(w.id, 'gettingStarted');
  assert.deepEqual(w.steps.map((s) => s.id), ['model', 'completion', 'reject', 'repair', 'panel']);
});

test('its media exist and ship (media/ is in the package), its links and events name real commands', () => {
  const declared = new Set(pkg.contributes.commands.map((c) => c.command));
  // Internal commands the extension registers without a palette entry.
  const internal = new Set(['starRepair.completionAccepted']);
  for (const s of pkg.contributes.walkthroughs[0].steps) {
    const file = s.media.markdown ?? s.media.image ?? '';
    assert.ok(file.startsWith('media/') && existsSync(join(root, file)), `${s.id}: ${file}`);
    assert.ok(s.completionEvents.length > 0, `${s.id} completes on something`);
    for (const [, cmd] of s.description.matchAll(/\(command:([\w.]+)/g)) assert.ok(declared.has(cmd), `${s.id} links to ${cmd}`);
    for (const e of s.completionEvents) {
      const cmd = /^onCommand:(.+)$/.exec(e)?.[1];
      if (cmd) assert.ok(declared.has(cmd) || internal.has(cmd), `${s.id} waits for ${cmd}`);
    }
  }
  // Every linked command activates the extension.
  assert.ok(pkg.activationEvents.includes('onCommand:starRepair.tryCompletion'));
});
