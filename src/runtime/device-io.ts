// Data kept on the GPU between runs (WebGPU): the decode graph's KV cache stays in device buffers
// (preferredOutputLocation 'gpu-buffer', fed back as the next step's inputs), the neuron patch is
// uploaded once per change instead of on every run, and device tensors are read back through a
// run. Two onnxruntime-node 1.30 facts shape this (docs/gpu.md): a device tensor is freed only by
// dispose() (not by garbage collection), and Tensor.getData() on a WebGPU buffer aborts the
// process, so reading goes through an Identity session whose output lives on the CPU.

import * as ort from 'onnxruntime-node';
import { Graph, type ElemType } from '../graph/builder';
import { presentName } from '../graph/architectures/decoder';

/** Providers whose outputs this module keeps on the device. */
export function keepsDataOnDevice(provider: string): boolean {
  return provider === 'webgpu';
}

/** preferredOutputLocation for the decode graph: caches on the device, logits to the CPU. */
export function decodeOutputLocations(layers: number): Record<string, ort.Tensor.DataLocation> {
  const out: Record<string, ort.Tensor.DataLocation> = { logits: 'cpu' };
  for (let l = 0; l < layers; l++) {
    out[presentName(l, 'key')] = 'gpu-buffer';
    out[presentName(l, 'value')] = 'gpu-buffer';
  }
  return out;
}

/** Disposes the tensors that live on a device; CPU tensors are left alone. */
export function disposeDeviceTensors(tensors: Iterable<ort.Tensor>): void {
  for (const t of tensors) if (t.location === 'gpu-buffer') t.dispose();
}

/** Frees a device cache's tensors if it is garbage-collected without release (a backstop only). */
export const deviceTensorRegistry = new FinalizationRegistry<ort.Tensor[]>((tensors) => disposeDeviceTensors(tensors));

/** A graph that copies every input to an output of the same name (inputs are `in:<name>`). */
function identityGraph(specs: readonly { name: string; dtype: ElemType; rank: number }[]): Uint8Array {
  const g = new Graph('float32');
  for (const s of specs) {
    const v = g.input(`in:${s.name}`, s.dtype, Array.from({ length: s.rank }, (_, i) => `${s.name}#${i}`));
    g.output(v, s.name);
  }
  return g.toModel('device-io');
}

function elemType(t: ort.Tensor): ElemType {
  if (t.type === 'float32' || t.type === 'float64' || t.type === 'int64' || t.type === 'bool') return t.type;
  throw new Error(`device-io: unsupported tensor type ${t.type}`);
}

/** Upload and read-back sessions on one provider, built on first use per set of names and shapes. */
export class DeviceIo {
  readonly provider: string;
  /** How many times tensors were uploaded (the patch: once per change). */
  uploads = 0;
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(provider: string) {
    this.provider = provider;
  }

  private session(feeds: Record<string, ort.Tensor>, location: ort.Tensor.DataLocation): Promise<ort.InferenceSession> {
    const specs = Object.entries(feeds).map(([name, t]) => ({ name, dtype: elemType(t), rank: t.dims.length }));
    const key = `${location}|${specs.map((s) => `${s.name}:${s.dtype}:${s.rank}`).join(',')}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = ort.InferenceSession.create(identityGraph(specs), { executionProviders: [this.provider], preferredOutputLocation: location });
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  private async copy(feeds: Record<string, ort.Tensor>, location: ort.Tensor.DataLocation): Promise<Record<string, ort.Tensor>> {
    const session = await this.session(feeds, location);
    const inputs: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) inputs[`in:${name}`] = t;
    const out = await session.run(inputs);
    const result: Record<string, ort.Tensor> = {};
    for (const name of Object.keys(feeds)) result[name] = out[name] as ort.Tensor;
    return result;
  }

  /** Device copies of CPU tensors (the caller disposes them). */
  async upload(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const out = await this.copy(feeds, 'gpu-buffer');
    this.uploads++;
    return out;
  }

  /** CPU copies of tensors wherever they live. */
  async download(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    const onDevice = Object.fromEntries(Object.entries(feeds).filter(([, t]) => t.location === 'gpu-buffer'));
    const copied = Object.keys(onDevice).length > 0 ? await this.copy(onDevice, 'cpu') : {};
    return { ...feeds, ...copied };
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}
