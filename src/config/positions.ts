/**
 * The longest row a run feeds its model, against the positions the model has. A pretraining
 * block holds `data.blockSize + 1` tokens (blockSize inputs, each with its next token as target,
 * all forwarded at once); an SFT example, or a preference pair's longer side, up to
 * `data.maxLength`. A row past the model's positions fails at the first forward pass, so both
 * are checked before a run starts: at config load for `model.init`, and once the start model's
 * config.json is read for `model.path`. RL prompts are not: generation stops at the context.
 */
export interface SequenceConfig {
  readonly algorithm: string;
  readonly data: { readonly blockSize: number; readonly maxLength: number };
}

/**
 * The field at fault and why, or undefined when every row fits `positions`. `model` names the
 * model (`model.init`, `the model at model.path (dir)`); `raise`, the field that sets its
 * positions, if the config has one.
 */
export function sequenceProblem(
  c: SequenceConfig,
  positions: number,
  model: string,
  raise?: string,
): { readonly path: readonly string[]; readonly message: string } | undefined {
  const more = (n: number) =>
    raise ? `raise ${raise} to ${n}` : `start from a model with at least ${n} positions`;
  if (c.algorithm === 'pretrain') {
    const { blockSize } = c.data;
    if (blockSize + 1 <= positions) return undefined;
    return {
      path: ['data', 'blockSize'],
      message:
        `blockSize ${blockSize} makes blocks of ${blockSize + 1} tokens (each input's next token ` +
        `is its target), more than the ${positions} positions of ${model}: lower data.blockSize to ` +
        `${positions - 1}, or ${more(blockSize + 1)}`,
    };
  }
  if (c.algorithm === 'sft' || c.algorithm === 'rm' || c.algorithm === 'dpo') {
    const { maxLength } = c.data;
    if (maxLength <= positions) return undefined;
    return {
      path: ['data', 'maxLength'],
      message:
        `maxLength ${maxLength} lets rows of up to ${maxLength} tokens through, more than the ` +
        `${positions} positions of ${model}: lower data.maxLength to ${positions}, or ` +
        more(maxLength),
    };
  }
  return undefined;
}
