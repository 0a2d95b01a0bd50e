// Software WebGPU adapters: whether WebGPU on this machine would run on a CPU-type device (Mesa's
// llvmpipe/lavapipe and the like), where the CPU provider is faster, so `auto` must not choose it.
// onnxruntime-node exposes no adapter information, so on Linux (Vulkan) the answer comes from the
// system (docs/gpu.md):
//   1. no GPU device node (/dev/dri/renderD*, /dev/nvidia<N>, /dev/dxg): a hardware Vulkan driver
//      has nothing to drive, so every adapter is a software one;
//   2. otherwise, where Mesa's Vulkan device-select layer is installed (it comes with Mesa's Vulkan
//      drivers, lavapipe included), a child process asks it to list the Vulkan devices with their
//      VkPhysicalDeviceType (MESA_VK_DEVICE_SELECT=list) while onnxruntime's WebGPU provider opens
//      the Vulkan instance; Dawn prefers any GPU over a CPU device, so WebGPU is on a software
//      adapter exactly when every listed device is of type CPU.
// Elsewhere (Windows, macOS, Linux without Mesa's layer) nothing is known and null is returned.

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Graph } from '../graph/builder';

/** One Vulkan device as Mesa's device-select layer lists it. */
export interface VulkanDevice {
  name: string;
  /** VkPhysicalDeviceType as the layer spells it: 'discrete GPU', 'integrated GPU', 'virtual GPU', 'CPU' or 'other'. */
  type: string;
}

/** The devices in the layer's `selectable devices:` listing (lines `  GPU 0: 10005:0 "llvmpipe (…)" CPU`). */
export function parseDeviceSelectList(text: string): VulkanDevice[] | null {
  if (!text.includes('selectable devices:')) return null;
  const out: VulkanDevice[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*GPU \d+: [0-9a-fA-F]+:[0-9a-fA-F]+ "(.*)" (discrete GPU|integrated GPU|virtual GPU|CPU|other)\b/.exec(line);
    if (m) out.push({ name: m[1], type: m[2] });
  }
  return out;
}

/** GPU device nodes a hardware Vulkan driver needs: DRM render nodes, NVIDIA's, WSL's /dev/dxg. */
export function gpuDeviceNodes(dev = '/dev'): string[] {
  const found: string[] = [];
  try {
    for (const n of readdirSync(join(dev, 'dri'))) if (/^renderD\d+$/.test(n)) found.push(join(dev, 'dri', n));
  } catch {
    // no /dev/dri
  }
  try {
    for (const n of readdirSync(dev)) if (/^nvidia\d+$/.test(n) || n === 'dxg') found.push(join(dev, n));
  } catch {
    // no /dev
  }
  return found;
}

/** Where the Vulkan loader looks for implicit layer manifests (Linux). */
function implicitLayerDirs(env: NodeJS.ProcessEnv): string[] {
  const data = (env.XDG_DATA_DIRS || '/usr/local/share:/usr/share').split(':').filter(Boolean);
  const config = (env.XDG_CONFIG_DIRS || '/etc/xdg').split(':').filter(Boolean);
  const home = env.XDG_DATA_HOME || (env.HOME ? join(env.HOME, '.local', 'share') : null);
  return [...config, '/etc', ...data, ...(home ? [home] : [])].map((d) => join(d, 'vulkan', 'implicit_layer.d'));
}

/** Whether Mesa's device-select layer is installed where the loader finds it. */
export function hasMesaDeviceSelectLayer(env: NodeJS.ProcessEnv = process.env): boolean {
  return implicitLayerDirs(env).some((d) => {
    try {
      return readdirSync(d).some((f) => /MESA_device_select/i.test(f));
    } catch {
      return false;
    }
  });
}

/** A one-node model: enough for onnxruntime's WebGPU provider to open the Vulkan instance. */
function tinyModel(): Uint8Array {
  const g = new Graph('float32');
  const a = g.input('a', 'float32', [1]);
  g.output(g.add(a, a), 'y');
  return g.toModel('adapter-probe');
}

/**
 * Lists the Vulkan devices through Mesa's device-select layer in a child process (the layer ends
 * the process once it has printed the list). Null when nothing was listed (no layer, or it timed out).
 */
export async function listVulkanDevices(timeoutMs = 20000): Promise<VulkanDevice[] | null> {
  let ortPath: string;
  try {
    ortPath = require.resolve('onnxruntime-node');
  } catch {
    return null;
  }
  const script = `const ort = require(process.argv[1]);
ort.InferenceSession.create(Buffer.from(process.argv[2], 'base64'), { executionProviders: ['webgpu'] }).then(() => process.exit(0), () => process.exit(0));`;
  const env: NodeJS.ProcessEnv = { ...process.env, MESA_VK_DEVICE_SELECT: 'list' };
  delete env.NODEVICE_SELECT;
  delete env.MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE;
  return new Promise((resolveList) => {
    let stderr = '';
    const child = spawn(process.execPath, ['-e', script, ortPath, Buffer.from(tinyModel()).toString('base64')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < 65536) stderr += s;
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolveList(null);
    });
    child.on('close', () => {
      clearTimeout(timer);
      resolveList(parseDeviceSelectList(stderr));
    });
  });
}

export interface SoftwareAdapterProbe {
  platform: NodeJS.Platform;
  /** GPU device nodes present (gpuDeviceNodes()). */
  deviceNodes: () => string[];
  /** Whether Mesa's device-select layer can list the devices. */
  hasLayer: () => boolean;
  listDevices: () => Promise<VulkanDevice[] | null>;
}

const systemProbe: SoftwareAdapterProbe = {
  platform: process.platform,
  deviceNodes: () => gpuDeviceNodes(),
  hasLayer: () => hasMesaDeviceSelectLayer(),
  listDevices: () => listVulkanDevices(),
};

/**
 * Why WebGPU would run on a software (CPU-type) adapter here, or null when it would not or when
 * that cannot be told (see the file comment).
 */
export async function softwareAdapterReason(probe: SoftwareAdapterProbe = systemProbe): Promise<string | null> {
  if (probe.platform !== 'linux') return null;
  const nodes = probe.deviceNodes();
  if (nodes.length === 0) {
    return 'no GPU here (no /dev/dri/renderD*, /dev/nvidia<N> or /dev/dxg), so WebGPU could only run on a software (CPU-type) Vulkan adapter such as Mesa\'s llvmpipe; the CPU provider is faster';
  }
  if (!probe.hasLayer()) return null;
  const devices = await probe.listDevices();
  if (!devices || devices.length === 0) return null;
  if (devices.some((d) => d.type !== 'CPU')) return null;
  return `the only Vulkan adapter${devices.length > 1 ? 's are' : ' is'} ${devices.map((d) => `"${d.name}"`).join(', ')}, a software (CPU-type) device; the CPU provider is faster`;
}

let cached: Promise<string | null> | null = null;

/** softwareAdapterReason() for this machine, asked once per process. */
export function systemSoftwareAdapterReason(): Promise<string | null> {
  cached ??= softwareAdapterReason();
  return cached;
}
