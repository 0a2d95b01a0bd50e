// The graph builder: a small TypeScript API that records ONNX nodes, each with its vector-Jacobian
// rule, and emits the backward pass with grad(loss, wrt). In the spirit of micrograd, but every
// value is a tensor and the backward pass is itself a graph that onnxruntime runs.
//
// Shapes are tracked statically (numbers for known sizes, strings for symbolic ones such as 'T') so
// that broadcasting ops know which axes to sum over in their backward rule; everything that depends
// on a run-time size reads it with Shape at run time.
// Graphs are emitted at ONNX opset OPSET (18); a graph that uses an op of a later opset (blocked
// DequantizeLinear, opset 21) is emitted at that opset instead, so every other graph is unchanged.

import { ELEM_CODE, encodeModel, MS_DOMAIN, MS_OPSET, type AttributeValue, type ElemType, type NodeData, type TensorData, type ValueInfoData } from './onnx-proto';

export type { ElemType } from './onnx-proto';
export type Dim = number | string;
export type FloatType = 'float32' | 'float64';

export interface Value {
  readonly name: string;
  readonly dtype: ElemType;
  readonly shape: readonly Dim[];
}

/** Gradients for an op's inputs, given gradients of its outputs; `needs[i]` says which inputs want one. */
export type Vjp = (g: Graph, op: Op, grads: readonly (Value | undefined)[], needs: readonly boolean[]) => (Value | undefined)[];

export interface Op {
  readonly opType: string;
  /** Operator domain (absent: ONNX's default); e.g. com.microsoft for MatMulNBits. */
  readonly domain?: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly vjp?: Vjp;
}

export class GraphError extends Error {}

/** The opset every graph is emitted at unless it uses a later op (see Graph.opset). */
export const OPSET = 18;
/** The first opset whose DequantizeLinear takes block_size (blocked dequantisation). */
export const BLOCKED_DEQUANTIZE_OPSET = 21;

function broadcastShape(a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i - (rank - a.length) >= 0 ? a[i - (rank - a.length)] : 1;
    const db = i - (rank - b.length) >= 0 ? b[i - (rank - b.length)] : 1;
    if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else if (typeof da === 'number' && typeof db === 'number' && da !== db) {
      throw new GraphError(`cannot broadcast [${a}] with [${b}]`);
    } else out.push(typeof da === 'number' ? da : db);
  }
  return out;
}

function isFloat(t: ElemType): boolean {
  return t === 'float32' || t === 'float64';
}

export class Graph {
  readonly floatType: FloatType;
  private readonly ops: Op[] = [];
  private readonly inputs: ValueInfoData[] = [];
  private readonly outputs: ValueInfoData[] = [];
  private readonly initializers: TensorData[] = [];
  private counter = 0;
  /** The opset the model is emitted at: OPSET, or the latest opset an op used needs. */
  private opsetNeeded = OPSET;

  constructor(floatType: FloatType = 'float32') {
    this.floatType = floatType;
  }

  private fresh(prefix: string): string {
    return `${prefix}${this.counter++}`;
  }

  // ---- graph interface -------------------------------------------------------------------------

  input(name: string, dtype: ElemType, shape: readonly Dim[]): Value {
    this.inputs.push({ name, type: dtype, shape });
    return { name, dtype, shape };
  }

  /**
   * A constant whose bytes live outside the model (ONNX external data), e.g. weights that a GPU
   * session uploads once; the session is given `location` → bytes when it is created.
   */
  externalConstant(name: string, dtype: ElemType, shape: readonly number[], location: string, byteLength: number): Value {
    this.initializers.push({ name, type: dtype, dims: shape, data: new Uint8Array(0), external: { location, offset: 0, length: byteLength } });
    return { name, dtype, shape };
  }

  /** Marks `v` as a graph output called `name`. */
  output(v: Value, name: string): Value {
    const out = v.name === name ? v : this.op('Identity', [v], [{ dtype: v.dtype, shape: v.shape, name }], {}, (_g, _op, [gy]) => [gy])[0];
    this.outputs.push({ name, type: out.dtype, shape: out.shape });
    return out;
  }

  constant(data: Float32Array | Float64Array | BigInt64Array | Uint8Array | readonly number[], shape: readonly number[], dtype: ElemType = this.floatType): Value {
    const name = this.fresh('c');
    let typed: TensorData['data'];
    if (dtype === 'float32') typed = Float32Array.from(data as ArrayLike<number>);
    else if (dtype === 'float64') typed = Float64Array.from(data as ArrayLike<number>);
    else if (dtype === 'int64') typed = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number>, (x) => BigInt(x)));
    else typed = Uint8Array.from(data as ArrayLike<number>);
    this.initializers.push({ name, type: dtype, dims: shape, data: typed });
    return { name, dtype, shape };
  }

  scalar(v: number, dtype: ElemType = this.floatType): Value {
    return this.constant([v], [], dtype);
  }

  ints(values: readonly number[]): Value {
    return this.constant(values, [values.length], 'int64');
  }

  /** Records one node. Output specs give dtype and static shape; names are generated unless given. */
  private op(
    opType: string,
    inputs: readonly Value[],
    outs: readonly { dtype: ElemType; shape: readonly Dim[]; name?: string }[],
    attributes: Record<string, AttributeValue> = {},
    vjp?: Vjp,
  ): Value[] {
    const outputs = outs.map((o) => ({ name: o.name ?? this.fresh('t'), dtype: o.dtype, shape: o.shape }));
    this.ops.push({ opType, inputs, outputs, attributes, vjp });
    return outputs;
  }

  /**
   * One forward-only node with any number of outputs, in the ONNX domain or onnxruntime's
   * com.microsoft (`contrib`): the fused kernels of the decode graph (architectures/decode-layer.ts),
   * which is never differentiated. An output spec named '' is an omitted optional output.
   */
  node(opType: string, inputs: readonly Value[], outs: readonly { dtype: ElemType; shape: readonly Dim[]; name?: string }[], attributes: Record<string, AttributeValue> = {}, contrib = false): Value[] {
    if (!contrib) return this.op(opType, inputs, outs, attributes);
    const outputs = outs.map((o) => ({ name: o.name ?? this.fresh('t'), dtype: o.dtype, shape: o.shape }));
    this.ops.push({ opType, domain: MS_DOMAIN, inputs, outputs, attributes });
    return outputs;
  }

  /**
   * One node of onnxruntime's com.microsoft domain (MatMulNBits, say), with its vector-Jacobian
   * rule when it is differentiable; graph/quantised.ts uses it.
   */
  contribOp(opType: string, inputs: readonly Value[], out: { dtype: ElemType; shape: readonly Dim[] }, attributes: Record<string, AttributeValue>, vjp?: Vjp): Value {
    const output = { name: this.fresh('t'), dtype: out.dtype, shape: out.shape };
    this.ops.push({ opType, domain: MS_DOMAIN, inputs, outputs: [output], attributes, vjp });
    return output;
  }

  /** x · Wᵀ (Gemm, transB) whose rule computes dL/dx with `rebuild(g, gy)`, a fresh copy of W made in the backward pass. */
  gemmRebuilt(x: Value, w: Value, rebuild: (g: Graph, gy: Value) => Value): Value {
    if (x.shape.length !== 2 || w.shape.length !== 2) throw new GraphError('gemm needs 2-D operands');
    return this.op1('Gemm', [x, w], x.dtype, [x.shape[0], w.shape[0]], { transB: { kind: 'int', value: 1 } }, (g, _op, [gy], needs) => [
      needs[0] ? g.gemm(gy!, rebuild(g, gy!), undefined, false) : undefined,
      undefined,
    ]);
  }

  private op1(opType: string, inputs: readonly Value[], dtype: ElemType, shape: readonly Dim[], attributes: Record<string, AttributeValue> = {}, vjp?: Vjp): Value {
    return this.op(opType, inputs, [{ dtype, shape }], attributes, vjp)[0];
  }

  // ---- elementwise -----------------------------------------------------------------------------

  /** Sums `g` down to `shape` (the backward of broadcasting). */
  unbroadcast(g: Value, shape: readonly Dim[]): Value {
    const lead = g.shape.length - shape.length;
    let out = g;
    if (lead > 0) out = this.reduceSum(out, Array.from({ length: lead }, (_, i) => i), false);
    const axes = shape.flatMap((d, i) => (d === 1 && out.shape[i] !== 1 ? [i] : []));
    return axes.length > 0 ? this.reduceSum(out, axes, true) : out;
  }

  private binary(opType: string, a: Value, b: Value, vjp: Vjp): Value {
    if (a.dtype !== b.dtype) throw new GraphError(`${opType}: dtypes differ (${a.dtype}, ${b.dtype})`);
    return this.op1(opType, [a, b], a.dtype, broadcastShape(a.shape, b.shape), {}, vjp);
  }

  add(a: Value, b: Value): Value {
    return this.binary('Add', a, b, (g, op, [gy], needs) => [
      needs[0] ? g.unbroadcast(gy!, op.inputs[0].shape) : undefined,
      needs[1] ? g.unbroadcast(gy!, op.inputs[1].shape) : undefined,
    ]);
  }

  sub(a: Value, b: Value): Value {
    return this.binary('Sub', a, b, (g, op, [gy], needs) => [
      needs[0] ? g.unbroadcast(gy!, op.inputs[0].shape) : undefined,
      needs[1] ? g.unbroadcast(g.neg(gy!), op.inputs[1].shape) : undefined,
    ]);
  }

  mul(a: Value, b: Value): Value {
    return this.binary('Mul', a, b, (g, op, [gy], needs) => {
      const [x, y] = op.inputs;
      return [needs[0] ? g.unbroadcast(g.mul(gy!, y), x.shape) : undefined, needs[1] ? g.unbroadcast(g.mul(gy!, x), y.shape) : undefined];
    });
  }

  div(a: Value, b: Value): Value {
    return this.binary('Div', a, b, (g, op, [gy], needs) => {
      const [x, y] = op.inputs;
      const gx = g.div(gy!, y);
      return [needs[0] ? g.unbroadcast(gx, x.shape) : undefined, needs[1] ? g.unbroadcast(g.neg(g.mul(gx, op.outputs[0])), y.shape) : undefined];
    });
  }

  private unary(opType: string, x: Value, vjp: Vjp): Value {
    return this.op1(opType, [x], x.dtype, x.shape, {}, vjp);
  }

  neg(x: Value): Value {
    return this.unary('Neg', x, (g, _op, [gy]) => [g.neg(gy!)]);
  }

  exp(x: Value): Value {
    return this.unary('Exp', x, (g, op, [gy]) => [g.mul(gy!, op.outputs[0])]);
  }

  log(x: Value): Value {
    return this.unary('Log', x, (g, op, [gy]) => [g.div(gy!, op.inputs[0])]);
  }

  sqrt(x: Value): Value {
    return this.unary('Sqrt', x, (g, op, [gy]) => [g.div(g.mul(gy!, g.scalar(0.5, x.dtype)), op.outputs[0])]);
  }

  reciprocal(x: Value): Value {
    return this.unary('Reciprocal', x, (g, op, [gy]) => {
      const y = op.outputs[0];
      return [g.neg(g.mul(gy!, g.mul(y, y)))];
    });
  }

  tanh(x: Value): Value {
    return this.unary('Tanh', x, (g, op, [gy]) => {
      const y = op.outputs[0];
      return [g.mul(gy!, g.sub(g.scalar(1, x.dtype), g.mul(y, y)))];
    });
  }

  sigmoid(x: Value): Value {
    return this.unary('Sigmoid', x, (g, op, [gy]) => {
      const y = op.outputs[0];
      return [g.mul(gy!, g.mul(y, g.sub(g.scalar(1, x.dtype), y)))];
    });
  }

  /** onnxruntime's CPU Erf is float32 only, so float64 graphs evaluate it in float32 (exact GELU only). */
  erf(x: Value): Value {
    if (x.dtype === 'float64') return this.cast(this.erf(this.cast(x, 'float32')), 'float64');
    return this.unary('Erf', x, (g, op, [gy]) => {
      const u = op.inputs[0];
      const dens = g.exp(g.neg(g.mul(u, u)));
      return [g.mul(gy!, g.mul(dens, g.scalar(2 / Math.sqrt(Math.PI), x.dtype)))];
    });
  }

  cast(x: Value, to: ElemType): Value {
    const code = ELEM_CODE[to];
    const vjp: Vjp | undefined = isFloat(x.dtype) && isFloat(to) ? (g, op, [gy]) => [g.cast(gy!, op.inputs[0].dtype)] : undefined;
    return this.op1('Cast', [x], to, x.shape, { to: { kind: 'int', value: code } }, vjp);
  }

  // ---- linear algebra --------------------------------------------------------------------------

  /** Matrix product with equal batch dimensions (or a 2-D right operand). */
  matmul(a: Value, b: Value): Value {
    const n = a.shape.length;
    if (n < 2 || b.shape.length < 2) throw new GraphError('matmul needs rank ≥ 2');
    const shape = [...a.shape.slice(0, -1), b.shape[b.shape.length - 1]];
    return this.op1('MatMul', [a, b], a.dtype, shape, {}, (g, op, [gy], needs) => {
      const [x, y] = op.inputs;
      const t = (v: Value) => g.transposeLast2(v);
      let gx: Value | undefined;
      let gw: Value | undefined;
      if (needs[0]) gx = g.matmul(gy!, t(y));
      if (needs[1]) {
        if (y.shape.length !== x.shape.length) throw new GraphError('matmul: gradient for a broadcast right operand is not supported');
        gw = g.matmul(t(x), gy!);
      }
      return [gx, gw];
    });
  }

  transposeLast2(v: Value): Value {
    const perm = v.shape.map((_, i) => i);
    const r = perm.length;
    [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
    return this.transpose(v, perm);
  }

  /** Y = A · op(B) + C for 2-D A; `transB` makes op(B) = Bᵀ (Hugging Face nn.Linear layout). */
  gemm(a: Value, b: Value, c: Value | undefined, transB: boolean): Value {
    if (a.shape.length !== 2 || b.shape.length !== 2) throw new GraphError('gemm needs 2-D operands');
    const shape = [a.shape[0], transB ? b.shape[0] : b.shape[1]];
    const inputs = c ? [a, b, c] : [a, b];
    return this.op1('Gemm', inputs, a.dtype, shape, { transB: { kind: 'int', value: transB ? 1 : 0 } }, (g, op, [gy], needs) => {
      const [x, w] = op.inputs;
      const gx = needs[0] ? (transB ? g.matmul(gy!, w) : g.gemm(gy!, w, undefined, true)) : undefined;
      let gw: Value | undefined;
      if (needs[1]) gw = transB ? g.gemmT(gy!, x) : g.gemmT(x, gy!);
      const gc = needs[2] ? g.unbroadcast(gy!, op.inputs[2].shape) : undefined;
      return [gx, gw, gc];
    });
  }

  /** Aᵀ · B for 2-D operands (the weight gradient of a linear layer). */
  private gemmT(a: Value, b: Value): Value {
    return this.op1('Gemm', [a, b], a.dtype, [a.shape[1], b.shape[1]], { transA: { kind: 'int', value: 1 } }, (g, op, [gy], needs) => {
      const [x, y] = op.inputs;
      return [needs[0] ? g.gemm(y, gy!, undefined, true) : undefined, needs[1] ? g.matmul(x, gy!) : undefined];
    });
  }

  // ---- shapes ----------------------------------------------------------------------------------

  /** ONNX Reshape: `dims` may hold 0 (copy that axis) and one -1; `shape` is the static shape to record. */
  reshape(x: Value, dims: readonly number[], shape?: readonly Dim[]): Value {
    const recorded = shape ?? dims.map((d, i) => (d === 0 ? x.shape[i] : d === -1 ? this.fresh('?') : d));
    return this.op1('Reshape', [x, this.ints(dims)], x.dtype, recorded, {}, (g, op, [gy]) => [g.reshapeLike(gy!, op.inputs[0])]);
  }

  /** Reshape `x` to the dims held by the int64 value `dims` (computed at run time); `shape` is the static shape to record. */
  reshapeTo(x: Value, dims: Value, shape: readonly Dim[]): Value {
    return this.op1('Reshape', [x, dims], x.dtype, shape, {}, (g, op, [gy]) => [g.reshapeLike(gy!, op.inputs[0])]);
  }

  /** Reshape `x` to the run-time shape of `like`. */
  reshapeLike(x: Value, like: Value): Value {
    return this.op1('Reshape', [x, this.shapeOf(like)], x.dtype, like.shape, {}, (g, op, [gy]) => [g.reshapeLike(gy!, op.inputs[0])]);
  }

  transpose(x: Value, perm: readonly number[]): Value {
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return this.op1('Transpose', [x], x.dtype, perm.map((p) => x.shape[p]), { perm: { kind: 'ints', value: perm } }, (g, _op, [gy]) => [g.transpose(gy!, inverse)]);
  }

  unsqueeze(x: Value, axis: number): Value {
    const shape = [...x.shape];
    shape.splice(axis, 0, 1);
    return this.op1('Unsqueeze', [x, this.ints([axis])], x.dtype, shape, {}, (g, op, [gy]) => [g.reshapeLike(gy!, op.inputs[0])]);
  }

  squeeze(x: Value, axis: number): Value {
    const shape = x.shape.filter((_, i) => i !== axis);
    return this.op1('Squeeze', [x, this.ints([axis])], x.dtype, shape, {}, (g, op, [gy]) => [g.reshapeLike(gy!, op.inputs[0])]);
  }

  /** Splits along `axis` into pieces of the given static sizes. */
  split(x: Value, axis: number, sizes: readonly number[]): Value[] {
    const outs = sizes.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return { dtype: x.dtype, shape };
    });
    return this.op('Split', [x, this.ints(sizes)], outs, { axis: { kind: 'int', value: axis } }, (g, op, grads) => {
      const parts = op.outputs.map((o, i) => grads[i] ?? g.zerosLike(o));
      return [g.concat(parts, axis)];
    });
  }

  concat(xs: readonly Value[], axis: number): Value {
    const shape = [...xs[0].shape];
    const sizes = xs.map((x) => x.shape[axis]);
    shape[axis] = sizes.every((s) => typeof s === 'number') ? (sizes as number[]).reduce((a, b) => a + b, 0) : this.fresh('?');
    return this.op1('Concat', xs, xs[0].dtype, shape, { axis: { kind: 'int', value: axis } }, (g, op, [gy], needs) => {
      // Piece sizes are read at run time: a KV cache's past length is only known then.
      const lens = op.inputs.map((v) => g.gather(g.shapeOf(v), g.ints([axis]), 0));
      const parts = g.op('Split', [gy!, g.concat(lens, 0)], op.inputs.map((v) => ({ dtype: v.dtype, shape: v.shape })), { axis: { kind: 'int', value: axis } });
      return parts.map((p, i) => (needs[i] ? p : undefined));
    });
  }

  /** Rows (axis 0) or columns (axis 1) of a 2-D tensor, or entries of a 1-D one. */
  gather(data: Value, indices: Value, axis: number): Value {
    const shape = [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)];
    return this.op1('Gather', [data, indices], data.dtype, shape, { axis: { kind: 'int', value: axis } }, (g, op, [gy], needs) => {
      if (!needs[0]) return [undefined, undefined];
      const [x, idx] = op.inputs;
      if (x.shape.length !== 2 || idx.shape.length !== 1) throw new GraphError('gather gradient: only 2-D data with 1-D indices');
      const where = g.expandLike(g.unsqueeze(idx, axis === 0 ? 1 : 0), gy!);
      return [g.scatterAdd(g.zerosLike(x), where, gy!, axis), undefined];
    });
  }

  gatherElements(data: Value, indices: Value, axis: number): Value {
    return this.op1('GatherElements', [data, indices], data.dtype, indices.shape, { axis: { kind: 'int', value: axis } }, (g, op, [gy], needs) => [
      needs[0] ? g.scatterAdd(g.zerosLike(op.inputs[0]), op.inputs[1], gy!, axis) : undefined,
      undefined,
    ]);
  }

  scatterAdd(data: Value, indices: Value, updates: Value, axis: number): Value {
    return this.op1('ScatterElements', [data, indices, updates], data.dtype, data.shape, {
      axis: { kind: 'int', value: axis },
      reduction: { kind: 'string', value: 'add' },
    });
  }

  expandLike(x: Value, like: Value): Value {
    return this.op1('Expand', [x, this.shapeOf(like)], x.dtype, like.shape);
  }

  /** Rows [start, end) along `axis` (negative indices count from the end). Not differentiable. */
  slice(x: Value, axis: number, start: number, end: number, shape: readonly Dim[]): Value {
    return this.op1('Slice', [x, this.ints([start]), this.ints([end]), this.ints([axis])], x.dtype, shape);
  }

  /**
   * [starts[i], ends[i]) along each of `axes`: one Slice naming several axes. Not differentiable.
   * onnxruntime fuses single-axis Slices that together cover a tensor into one Split (all parts
   * alive at once); a Slice over two axes is never fused (graph/quantised.ts slices rows so).
   */
  sliceAxes(x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[], shape: readonly Dim[]): Value {
    if (starts.length !== axes.length || ends.length !== axes.length) throw new GraphError('sliceAxes: one start and one end per axis');
    return this.op1('Slice', [x, this.ints(starts), this.ints(ends), this.ints(axes)], x.dtype, shape);
  }

  tile(x: Value, repeats: readonly number[], shape: readonly Dim[]): Value {
    return this.op1('Tile', [x, this.ints(repeats)], x.dtype, shape);
  }

  // ---- reductions and normalisers --------------------------------------------------------------

  reduceSum(x: Value, axes: readonly number[], keepdims: boolean): Value {
    const shape = x.shape.flatMap((d, i) => (axes.includes(i) ? (keepdims ? [1] : []) : [d]));
    return this.op1('ReduceSum', [x, this.ints(axes)], x.dtype, shape, { keepdims: { kind: 'int', value: keepdims ? 1 : 0 } }, (g, op, [gy]) => {
      const input = op.inputs[0];
      let kept = gy!;
      if (!keepdims) for (const a of [...axes].sort((p, q) => p - q)) kept = g.unsqueeze(kept, a);
      return [g.expandLike(kept, input)];
    });
  }

  /** Mean over axes whose sizes are known statically (the hidden size, in practice). */
  reduceMean(x: Value, axes: readonly number[], keepdims: boolean): Value {
    let count = 1;
    for (const a of axes) {
      const d = x.shape[a];
      if (typeof d !== 'number') throw new GraphError('reduceMean over a symbolic axis');
      count *= d;
    }
    return this.mul(this.reduceSum(x, axes, keepdims), this.scalar(1 / count, x.dtype));
  }

  softmax(x: Value, axis: number): Value {
    return this.op1('Softmax', [x], x.dtype, x.shape, { axis: { kind: 'int', value: axis } }, (g, op, [gy]) => {
      const y = op.outputs[0];
      const ax = axis < 0 ? y.shape.length + axis : axis;
      return [g.mul(y, g.sub(gy!, g.reduceSum(g.mul(gy!, y), [ax], true)))];
    });
  }

  logSoftmax(x: Value, axis: number): Value {
    return this.op1('LogSoftmax', [x], x.dtype, x.shape, { axis: { kind: 'int', value: axis } }, (g, op, [gy]) => {
      const y = op.outputs[0];
      const ax = axis < 0 ? y.shape.length + axis : axis;
      return [g.sub(gy!, g.mul(g.exp(y), g.reduceSum(gy!, [ax], true)))];
    });
  }

  // ---- not differentiable ----------------------------------------------------------------------

  /** An elementwise op on values that never need a gradient (cos/sin of positions, say). */
  unaryNoGrad(opType: 'Cos' | 'Sin', x: Value): Value {
    return this.op1(opType, [x], x.dtype, x.shape);
  }

  shapeOf(x: Value): Value {
    return this.op1('Shape', [x], 'int64', [x.shape.length]);
  }

  zerosLike(x: Value): Value {
    const zero: TensorData = { name: '', type: x.dtype, dims: [1], data: x.dtype === 'float64' ? new Float64Array(1) : new Float32Array(1) };
    return this.op1('ConstantOfShape', [this.shapeOf(x)], x.dtype, x.shape, { value: { kind: 'tensor', value: zero } });
  }

  range(start: Value, limit: Value, delta: Value, shape: readonly Dim[]): Value {
    return this.op1('Range', [start, limit, delta], start.dtype, shape);
  }

  greater(a: Value, b: Value): Value {
    return this.op1('Greater', [a, b], 'bool', broadcastShape(a.shape, b.shape));
  }

  equal(a: Value, b: Value): Value {
    return this.op1('Equal', [a, b], 'bool', broadcastShape(a.shape, b.shape));
  }

  or(a: Value, b: Value): Value {
    return this.op1('Or', [a, b], 'bool', broadcastShape(a.shape, b.shape));
  }

  where(cond: Value, a: Value, b: Value): Value {
    return this.op1('Where', [cond, a, b], a.dtype, broadcastShape(cond.shape, broadcastShape(a.shape, b.shape)));
  }

  /** a & b for integer tensors (unpacking 4-bit codes). */
  bitwiseAnd(a: Value, b: Value): Value {
    return this.op1('BitwiseAnd', [a, b], a.dtype, broadcastShape(a.shape, b.shape));
  }

  /** a >> b for unsigned integer tensors. */
  shiftRight(a: Value, b: Value): Value {
    return this.op1('BitShift', [a, b], a.dtype, broadcastShape(a.shape, b.shape), { direction: { kind: 'string', value: 'RIGHT' } });
  }

  /**
   * DequantizeLinear: y = (x − zeroPoint) · scale in float32. blockSize 0: per-axis (opset 13),
   * scale and zeroPoint 1-D with one value per index of `axis`. blockSize > 0: blocked (opset 21,
   * which this raises the graph to), scale and zeroPoint [.., ⌈n/blockSize⌉, ..] with one value
   * per block of `blockSize` entries along `axis`. Not differentiable (the model's constants).
   */
  dequantizeLinear(x: Value, scale: Value, zeroPoint: Value, axis: number, blockSize = 0): Value {
    if (scale.dtype !== 'float32' || zeroPoint.dtype !== x.dtype) throw new GraphError(`DequantizeLinear: float32 scales and zero points of the codes' type (${x.dtype}), not ${scale.dtype}, ${zeroPoint.dtype}`);
    const attributes: Record<string, AttributeValue> = { axis: { kind: 'int', value: axis } };
    if (blockSize > 0) {
      this.opsetNeeded = Math.max(this.opsetNeeded, BLOCKED_DEQUANTIZE_OPSET);
      attributes.block_size = { kind: 'int', value: blockSize };
    }
    return this.op1('DequantizeLinear', [x, scale, zeroPoint], 'float32', x.shape, attributes);
  }

  /** Indices of the non-zero entries of a 1-D tensor, as a 1-D int64 tensor. */
  nonZero1d(x: Value, dim: Dim): Value {
    const nz = this.op1('NonZero', [x], 'int64', [1, dim]);
    return this.reshape(nz, [-1], [dim]);
  }

  // ---- autodiff --------------------------------------------------------------------------------

  /**
   * Emits the backward pass of scalar `loss` and returns dloss/dw for each `w` in `wrt`.
   * Only ops on a path from some `wrt` to `loss` are differentiated, so constant inputs (weights fed
   * as inputs, token ids) cost nothing. An op on such a path without a rule is an error.
   */
  grad(loss: Value, wrt: readonly Value[]): Value[] {
    if (loss.shape.length !== 0) throw new GraphError('grad: loss must be a scalar');
    const depends = new Set(wrt.map((w) => w.name));
    const forward = this.ops.slice();
    for (const op of forward) {
      if (op.inputs.some((v) => depends.has(v.name))) for (const o of op.outputs) depends.add(o.name);
    }
    if (!depends.has(loss.name)) throw new GraphError('grad: loss does not depend on the requested values');
    const grads = new Map<string, Value>([[loss.name, this.scalar(1, loss.dtype)]]);
    const accumulate = (v: Value, gv: Value) => {
      const prev = grads.get(v.name);
      grads.set(v.name, prev ? this.add(prev, gv) : gv);
    };
    for (let i = forward.length - 1; i >= 0; i--) {
      const op = forward[i];
      const outGrads = op.outputs.map((o) => grads.get(o.name));
      if (outGrads.every((x) => x === undefined)) continue;
      const needs = op.inputs.map((v) => depends.has(v.name) && isFloat(v.dtype));
      if (!needs.some(Boolean)) continue;
      if (!op.vjp) throw new GraphError(`grad: ${op.opType} has no vector-Jacobian rule`);
      const inGrads = op.vjp(this, op, outGrads, needs);
      op.inputs.forEach((v, k) => {
        const gv = inGrads[k];
        if (needs[k] && gv) accumulate(v, gv);
      });
    }
    return wrt.map((w) => grads.get(w.name) ?? this.zerosLike(w));
  }

  // ---- emission --------------------------------------------------------------------------------

  toModel(name = 'graph'): Uint8Array {
    const nodes: NodeData[] = this.ops.map((op, i) => ({
      opType: op.opType,
      name: `${op.opType}_${i}`,
      inputs: op.inputs.map((v) => v.name),
      outputs: op.outputs.map((v) => v.name),
      attributes: op.attributes,
      ...(op.domain ? { domain: op.domain } : {}),
    }));
    const extraOpsets = this.ops.some((op) => op.domain === MS_DOMAIN) ? { [MS_DOMAIN]: MS_OPSET } : undefined;
    return encodeModel({ graphName: name, opset: this.opset, nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs, extraOpsets });
  }

  /** The ONNX opset the model is emitted at: OPSET unless an op needs a later one. */
  get opset(): number {
    return this.opsetNeeded;
  }

  get nodeCount(): number {
    return this.ops.length;
  }
}
