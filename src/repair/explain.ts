// The LM-head explanation of one patched neuron (the panel's neuron details): what the neuron's
// delta does to the next-token logits per unit of its activation — the LM head applied to the
// delta, final norm aside — and the tokens it pushes up and down most. Pure: weights in, numbers
// and token texts out.

/** One token and the logit change the delta gives it. */
export interface TokenPush {
  token: string;
  logit: number;
}

export interface NeuronExplanation {
  /** Euclidean norm of the delta. */
  deltaNorm: number;
  /** The `top` tokens the delta raises most, largest first. */
  up: TokenPush[];
  /** The `top` tokens the delta lowers most, most lowered first. */
  down: TokenPush[];
}

/**
 * Explains a down-projection row delta through the LM head `lmHead` ([vocab, d] row-major, d =
 * delta.length): logit change of every token, then the top `top` up and down. Ties keep token
 * order (a stable sort).
 */
export function explainNeuronDelta(
  lmHead: ArrayLike<number>,
  vocab: number,
  delta: ArrayLike<number>,
  tokenText: (id: number) => string,
  top = 5,
): NeuronExplanation {
  const d = delta.length;
  const logits = new Float64Array(vocab);
  for (let v = 0; v < vocab; v++) {
    let s = 0;
    const off = v * d;
    for (let j = 0; j < d; j++) s += lmHead[off + j] * delta[j];
    logits[v] = s;
  }
  const order = Array.from({ length: vocab }, (_, v) => v).sort((a, b) => logits[b] - logits[a]);
  const push = (v: number): TokenPush => ({ token: tokenText(v), logit: logits[v] });
  let sq = 0;
  for (let j = 0; j < d; j++) sq += delta[j] * delta[j];
  return {
    deltaNorm: Math.sqrt(sq),
    up: order.slice(0, top).map(push),
    down: order.slice(-top).reverse().map(push),
  };
}
