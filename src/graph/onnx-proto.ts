// Serialises an ONNX ModelProto (the subset our generated graphs use) to protobuf bytes.
// Hand-written so the project needs no protobuf runtime: ONNX's schema is stable and we only write.
// Field numbers follow onnx/onnx.proto. Nodes of a non-default domain (com.microsoft's MatMulNBits
// for quantised weights) name it, and the model imports that domain's opset. The IR version is
// the one the opset needs (irVersionFor).

export type ElemType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8';

export const ELEM_CODE: Record<ElemType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float64: 11 };

/** onnxruntime's contrib-op domain and the opset version its ops are registered under. */
export const MS_DOMAIN = 'com.microsoft';
export const MS_OPSET = 1;

export interface TensorData {
  name: string;
  type: ElemType;
  dims: readonly number[];
  /** Raw values; empty when `external` names where onnxruntime finds them instead. */
  data: Float32Array | Float64Array | BigInt64Array | Uint8Array;
  /** External data: a file name the session resolves (from disk or from SessionOptions.externalData). */
  external?: { location: string; offset: number; length: number };
}

export type AttributeValue =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: TensorData };

export interface NodeData {
  opType: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes: Readonly<Record<string, AttributeValue>>;
  /** Operator domain; absent: the default ONNX domain. */
  domain?: string;
}

export interface ValueInfoData {
  name: string;
  type: ElemType;
  shape: readonly (number | string)[];
}

export interface ModelData {
  graphName: string;
  opset: number;
  nodes: readonly NodeData[];
  initializers: readonly TensorData[];
  inputs: readonly ValueInfoData[];
  outputs: readonly ValueInfoData[];
  /** Opsets of other domains the nodes use (domain → version). */
  extraOpsets?: Readonly<Record<string, number>>;
}

/** The ONNX IR version a model of `opset` declares (ONNX's table): 8 up to opset 18, 9 for 19–20, 10 for 21. */
export function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset === 21) return 10;
  throw new Error(`internal: no IR version chosen for opset ${opset}`);
}

/** Growable byte buffer with protobuf's primitive encodings. */
class Writer {
  private buf = new Uint8Array(1024);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(v: number | bigint): void {
    // Negative int64 values are written as 10-byte two's complement, as protobuf requires.
    let x = BigInt.asUintN(64, BigInt(v));
    this.reserve(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, 5);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
  }

  message(field: number, write: (w: Writer) => void): void {
    const inner = new Writer();
    write(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

function littleEndianBytes(t: TensorData): Uint8Array {
  const d = t.data;
  if (d instanceof Uint8Array) return d;
  // Typed arrays are little-endian on every platform Node supports; copy to detach from shared buffers.
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
}

function writeTensor(w: Writer, t: TensorData): void {
  for (const dim of t.dims) w.int(1, dim);
  w.int(2, ELEM_CODE[t.type]);
  w.string(8, t.name);
  if (t.external) {
    const entry = (key: string, value: string) => w.message(13, (e) => {
      e.string(1, key);
      e.string(2, value);
    });
    entry('location', t.external.location);
    entry('offset', String(t.external.offset));
    entry('length', String(t.external.length));
    w.int(14, 1); // data_location = EXTERNAL
  } else w.bytes(9, littleEndianBytes(t));
}

function writeAttribute(w: Writer, name: string, a: AttributeValue): void {
  w.string(1, name);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value);
      w.int(20, 1);
      break;
    case 'int':
      w.int(3, a.value);
      w.int(20, 2);
      break;
    case 'string':
      w.string(4, a.value);
      w.int(20, 3);
      break;
    case 'tensor':
      w.message(5, (m) => writeTensor(m, a.value));
      w.int(20, 4);
      break;
    case 'ints':
      for (const v of a.value) w.int(8, v);
      w.int(20, 7);
      break;
  }
}

function writeValueInfo(w: Writer, v: ValueInfoData): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, ELEM_CODE[v.type]);
      tensor.message(2, (shape) => {
        for (const dim of v.shape) {
          shape.message(1, (d) => (typeof dim === 'number' ? d.int(1, dim) : d.string(2, dim)));
        }
      });
    }),
  );
}

export function encodeModel(model: ModelData): Uint8Array {
  const w = new Writer();
  w.int(1, irVersionFor(model.opset));
  w.string(2, 'star-repair');
  w.message(7, (g) => {
    for (const n of model.nodes) {
      g.message(1, (node) => {
        for (const i of n.inputs) node.string(1, i);
        for (const o of n.outputs) node.string(2, o);
        node.string(3, n.name);
        node.string(4, n.opType);
        if (n.domain) node.string(7, n.domain);
        for (const [name, a] of Object.entries(n.attributes)) node.message(5, (m) => writeAttribute(m, name, a));
      });
    }
    g.string(2, model.graphName);
    for (const t of model.initializers) g.message(5, (m) => writeTensor(m, t));
    for (const v of model.inputs) g.message(11, (m) => writeValueInfo(m, v));
    for (const v of model.outputs) g.message(12, (m) => writeValueInfo(m, v));
  });
  w.message(8, (o) => {
    o.string(1, '');
    o.int(2, model.opset);
  });
  for (const [domain, version] of Object.entries(model.extraOpsets ?? {})) {
    w.message(8, (o) => {
      o.string(1, domain);
      o.int(2, version);
    });
  }
  return w.finish();
}
