import { TroupeError } from '../../../errors.js';
import { int, str, type Where } from '../json.js';
import type { ModelData } from '../spec.js';
import { invert, type Model, type ModelKind, readVocab, vocabField } from './types.js';

type WordPieceData = Extract<ModelData, { type: 'WordPiece' }>;

/**
 * WordPiece (HF models/wordpiece, BERT): greedy longest match first. From the start of the
 * pre-token, the longest vocab entry that prefixes the rest (spelt with `##` after the first
 * piece) is taken, then again from where it ended. A pre-token with no such split, or longer
 * than `max_input_chars_per_word` characters, is one `[UNK]`.
 */
export class WordPieceModel implements Model {
  readonly size: number;
  private readonly tokens: string[];
  private readonly unkToken: string;
  private readonly prefix: string;
  private readonly maxChars: number;

  constructor(
    private readonly data: WordPieceData,
    private readonly w: Where,
  ) {
    const o = data.options;
    this.unkToken = str(o, 'unk_token', w, '[UNK]');
    this.prefix = str(o, 'continuing_subword_prefix', w, '##');
    this.maxChars = int(o, 'max_input_chars_per_word', w, 100);
    ({ tokens: this.tokens, size: this.size } = invert(data.vocab));
  }

  tokenToId(token: string): number | undefined {
    return this.data.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  private unk(): number {
    const id = this.data.vocab.get(this.unkToken);
    if (id === undefined) {
      throw new TroupeError(
        'BAD_CHECKPOINT',
        `${this.w.file}: WordPiece needs its unk_token ${JSON.stringify(this.unkToken)}, which is not in the vocab`,
      );
    }
    return id;
  }

  tokenize(piece: string, out: number[]): void {
    if (piece.length === 0) return;
    let chars = 0;
    for (let i = 0; i < piece.length; i++) {
      const c = piece.charCodeAt(i);
      if (c < 0xdc00 || c > 0xdfff) chars++;
    }
    if (chars > this.maxChars) {
      out.push(this.unk());
      return;
    }
    const { vocab } = this.data;
    const start0 = out.length;
    let start = 0;
    while (start < piece.length) {
      let end = piece.length;
      let found = -1;
      while (start < end) {
        const sub = start > 0 ? this.prefix + piece.slice(start, end) : piece.slice(start, end);
        const id = vocab.get(sub);
        if (id !== undefined) {
          found = id;
          break;
        }
        // Back off one character (a surrogate pair is one).
        const lo = piece.charCodeAt(end - 1);
        end -= lo >= 0xdc00 && lo <= 0xdfff && end - 2 >= start ? 2 : 1;
      }
      if (found < 0) {
        out.length = start0;
        out.push(this.unk());
        return;
      }
      out.push(found);
      start = end;
    }
  }
}

export const WORDPIECE: ModelKind = {
  read(v, w) {
    const { type: _t, vocab: _v, ...options } = v;
    return { type: 'WordPiece', vocab: readVocab(v, w), options };
  },
  build: (data, w) => new WordPieceModel(data as WordPieceData, w),
  writeTables: (data) => [vocabField((data as WordPieceData).vocab)],
};
