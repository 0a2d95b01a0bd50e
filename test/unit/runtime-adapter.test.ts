// Software-adapter detection (src/runtime/adapter.ts) and the `auto` choice it feeds: the parsing of
// Mesa's device listing, the GPU device nodes, every branch of the decision, and, on this machine,
// the real listing and the real `auto` choice (skipped with the reason where they do not apply).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { gpuDeviceNodes, hasMesaDeviceSelectLayer, listVulkanDevices, parseDeviceSelectList, softwareAdapterReason, systemSoftwareAdapterReason, type SoftwareAdapterProbe } from '../../src/runtime/adapter';
import { ModelRuntime } from '../../src/runtime/runtime';

// Verbatim from Mesa 25.0.7's layer with lavapipe as the only driver.
const LAVAPIPE = 'selectable devices:\n  GPU 0: 10005:0 "llvmpipe (LLVM 15.0.6, 256 bits)" CPU\n';
const MIXED = 'selectable devices:\n  GPU 0: 1002:73bf "AMD Radeon RX 6800 (RADV NAVI21)" discrete GPU 0000:03:00.0\n  GPU 1: 10005:0 "llvmpipe (LLVM 15.0.6, 256 bits)" CPU\n';

test('parseDeviceSelectList reads names and device types, and null without a listing', () => {
  assert.deepEqual(parseDeviceSelectList(LAVAPIPE), [{ name: 'llvmpipe (LLVM 15.0.6, 256 bits)', type: 'CPU' }]);
  assert.deepEqual(parseDeviceSelectList(MIXED), [
    { name: 'AMD Radeon RX 6800 (RADV NAVI21)', type: 'discrete GPU' },
    { name: 'llvmpipe (LLVM 15.0.6, 256 bits)', type: 'CPU' },
  ]);
  assert.equal(parseDeviceSelectList('Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced\n'), null);
});

test('gpuDeviceNodes finds DRM render nodes, NVIDIA device nodes and /dev/dxg, nothing else', () => {
  const dev = mkdtempSync(join(tmpdir(), 'star-dev-'));
  try {
    assert.deepEqual(gpuDeviceNodes(dev), []);
    mkdirSync(join(dev, 'dri'));
    for (const f of ['dri/card0', 'nvidiactl', 'nvidia-uvm', 'null']) writeFileSync(join(dev, f), '');
    assert.deepEqual(gpuDeviceNodes(dev), [], 'card nodes and NVIDIA control nodes are not GPUs a driver renders on');
    for (const f of ['dri/renderD128', 'nvidia0', 'dxg']) writeFileSync(join(dev, f), '');
    assert.deepEqual(gpuDeviceNodes(dev).sort(), [join(dev, 'dri', 'renderD128'), join(dev, 'dxg'), join(dev, 'nvidia0')].sort());
  } finally {
    rmSync(dev, { recursive: true, force: true });
  }
});

function probe(over: Partial<SoftwareAdapterProbe>): SoftwareAdapterProbe & { listed: number } {
  const p = {
    listed: 0,
    platform: 'linux' as NodeJS.Platform,
    deviceNodes: () => ['/dev/dri/renderD128'],
    hasLayer: () => true,
    listDevices: async () => {
      p.listed++;
      return parseDeviceSelectList(LAVAPIPE);
    },
    ...over,
  };
  return p;
}

test('softwareAdapterReason: every branch', async () => {
  assert.equal(await softwareAdapterReason(probe({ platform: 'win32' })), null, 'nothing is known off Linux');
  const noNodes = probe({ deviceNodes: () => [] });
  assert.match((await softwareAdapterReason(noNodes)) ?? '', /no GPU here .*software \(CPU-type\)/);
  assert.equal(noNodes.listed, 0, 'without a GPU device node no child process is needed');
  assert.match((await softwareAdapterReason(probe({}))) ?? '', /the only Vulkan adapter is "llvmpipe \(LLVM 15\.0\.6, 256 bits\)", a software \(CPU-type\) device/);
  assert.equal(await softwareAdapterReason(probe({ listDevices: async () => parseDeviceSelectList(MIXED) })), null, 'Dawn prefers the GPU over llvmpipe');
  assert.equal(await softwareAdapterReason(probe({ hasLayer: () => false })), null, 'no layer: unknown');
  assert.equal(await softwareAdapterReason(probe({ listDevices: async () => null })), null, 'nothing listed: unknown');
  assert.equal(await softwareAdapterReason(probe({ listDevices: async () => [] })), null, 'no device at all: WebGPU fails by itself');
});

test('on this machine, Mesa\'s layer lists the Vulkan devices with their types', async (t) => {
  if (!hasMesaDeviceSelectLayer()) {
    t.skip("Mesa's Vulkan device-select layer is not installed (no Mesa Vulkan drivers)");
    return;
  }
  const devices = await listVulkanDevices();
  t.diagnostic(`devices: ${JSON.stringify(devices)}`);
  assert.ok(devices && devices.length > 0, 'the layer listed no device');
  for (const d of devices) assert.match(d.type, /^(discrete GPU|integrated GPU|virtual GPU|CPU|other)$/);
});

test('auto never runs on a software adapter: with one here it falls back to the CPU and says why', async (t) => {
  const reason = await systemSoftwareAdapterReason();
  if (reason === null) {
    t.skip('WebGPU here is not known to be on a software adapter');
    return;
  }
  const folder = loadModelFolder(join(__dirname, '..', 'fixtures', 'models', 'qwen2'));
  const rt = new ModelRuntime(folder.config, folder.weights, { provider: 'auto' });
  try {
    await rt.warm(['decode']);
    assert.equal(rt.provider, 'cpu');
    assert.deepEqual(
      rt.fallbacks.find((f) => f.provider === 'webgpu'),
      { provider: 'webgpu', reason },
    );
  } finally {
    await rt.release();
  }
});
