// Reading a serialized ONNX protobuf in tests without a protobuf library: the fields of one
// message, as (field number, bytes of a length-delimited field or null for a scalar).

export function protoFields(buf: Uint8Array): [number, Uint8Array | null][] {
  const out: [number, Uint8Array | null][] = [];
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 1;
    for (;;) {
      const b = buf[i++];
      v += (b & 0x7f) * shift;
      shift *= 128;
      if (b < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const wire = key % 8;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const n = varint();
      out.push([Math.floor(key / 8), buf.subarray(i, i + n)]);
      i += n;
      continue;
    } else throw new Error(`wire type ${wire}`);
    out.push([Math.floor(key / 8), null]);
  }
  return out;
}

export const protoText = (b: Uint8Array): string => new TextDecoder().decode(b);
