import { TroupeError } from '../../errors.js';

export interface PackOptions {
  /** Targets per block: each block holds `blockSize + 1` tokens (inputs are the first
   *  `blockSize`, targets the last `blockSize`). */
  readonly blockSize: number;
  /** Appended after every document, so the model learns where documents end. */
  readonly eosId: number;
  /**
   * The tokens left at the end: 'drop' (default; every block is full) or 'pad' (one last block,
   * filled with `padId` and masked out).
   */
  readonly remainder?: 'drop' | 'pad';
  /** Padding id for `remainder: 'pad'`; default `eosId`. Padding is never attended to or scored. */
  readonly padId?: number;
  /**
   * Do not score the first token of a document as a target of the previous one (its loss mask is
   * 0). Attention still crosses the boundary: a block has no per-document attention. Default false.
   */
  readonly maskBoundaries?: boolean;
}

/** One training row of packed text. */
export interface PackedBlock {
  /** [blockSize + 1] token ids. */
  readonly ids: number[];
  /** [blockSize + 1] 1 = real token, 0 = padding (only in a padded last block). */
  readonly mask: Uint8Array;
  /** [blockSize + 1] 1 = this token counts as a target (see `lmLoss`; position 0 never does). */
  readonly lossMask: Uint8Array;
}

/**
 * Packing for pretraining: documents are joined into one token stream, each followed by EOS, and
 * the stream is cut into blocks of `blockSize + 1` tokens. Consecutive blocks overlap by one
 * token (block k holds stream[k·blockSize … (k+1)·blockSize]), so that every token after the
 * first is a target exactly once: the last token of a block, a target there, is the first input of
 * the next. Push documents as they stream in; `finish` returns what is left (see `remainder`).
 */
export class Packer {
  private readonly blockSize: number;
  private readonly eosId: number;
  private readonly padId: number;
  private readonly pad: boolean;
  private readonly maskBoundaries: boolean;
  /** Tokens not yet emitted (fewer than blockSize + 1), and whether each starts a document. */
  private tokens: number[] = [];
  private starts: number[] = [];

  constructor(opts: PackOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Packer: blockSize must be a positive integer, got ${opts.blockSize}`,
      );
    }
    if (!Number.isInteger(opts.eosId) || opts.eosId < 0) {
      throw new TroupeError('BAD_ARGUMENT', `Packer: eosId must be a token id, got ${opts.eosId}`);
    }
    const remainder = opts.remainder ?? 'drop';
    if (remainder !== 'drop' && remainder !== 'pad') {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Packer: remainder must be 'drop' or 'pad', got '${remainder}'`,
      );
    }
    this.blockSize = opts.blockSize;
    this.eosId = opts.eosId;
    this.padId = opts.padId ?? opts.eosId;
    this.pad = remainder === 'pad';
    this.maskBoundaries = opts.maskBoundaries ?? false;
  }

  /** Add one document's ids; returns the blocks it completes (one pass, any document length). */
  push(doc: readonly number[]): PackedBlock[] {
    const out: PackedBlock[] = [];
    for (let i = 0; i < doc.length; i++) this.add(doc[i], i === 0 ? 1 : 0, out);
    this.add(this.eosId, doc.length === 0 ? 1 : 0, out);
    return out;
  }

  /** One token onto the stream; a full block is emitted, and its last token starts the next. */
  private add(id: number, start: number, out: PackedBlock[]): void {
    this.tokens.push(id);
    this.starts.push(start);
    if (this.tokens.length <= this.blockSize) return;
    out.push(this.block(this.blockSize + 1));
    this.tokens = [id];
    this.starts = [start];
  }

  /** The last, partial block: none with 'drop', or padded to full size with 'pad'. */
  finish(): PackedBlock[] {
    const real = this.tokens.length;
    const out = this.pad && real >= 2 ? [this.block(real)] : [];
    this.tokens = [];
    this.starts = [];
    return out;
  }

  /** A block of the first `real` buffered tokens, padded to blockSize + 1. */
  private block(real: number): PackedBlock {
    const n = this.blockSize + 1;
    const ids = new Array<number>(n).fill(this.padId);
    const mask = new Uint8Array(n);
    const lossMask = new Uint8Array(n);
    for (let t = 0; t < real; t++) {
      ids[t] = this.tokens[t];
      mask[t] = 1;
      lossMask[t] = t > 0 && !(this.maskBoundaries && this.starts[t]) ? 1 : 0;
    }
    return { ids, mask, lossMask };
  }
}

/**
 * Pack tokenized documents (see `Packer`). `docs` is read one document at a time, so a generator
 * that tokenizes as it goes never holds more than one document's ids. Blocks are appended one by
 * one: a spread (`out.push(...blocks)`) overflows the call stack past ~100k blocks.
 */
export function packDocuments(docs: Iterable<readonly number[]>, opts: PackOptions): PackedBlock[] {
  const packer = new Packer(opts);
  const out: PackedBlock[] = [];
  for (const doc of docs) for (const block of packer.push(doc)) out.push(block);
  for (const block of packer.finish()) out.push(block);
  return out;
}
