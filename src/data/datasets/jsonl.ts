import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { TroupeError } from '../../errors.js';
import { kind } from '../messages.js';
import { type DataLocation, dataError } from './location.js';

/** One row of a data file, with where it came from. */
export interface RawRow {
  readonly row: Record<string, unknown>;
  readonly where: DataLocation;
}

/**
 * Stream a JSONL file: one JSON object per line, read line by line (the file is never held in
 * memory). Blank lines are skipped; line numbers are 1-based and count them.
 */
export async function* readJsonl(file: string): AsyncGenerator<RawRow> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const raw of lines) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      const where = { file, line };
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (cause) {
        throw dataError(
          where,
          `not valid JSON (${(cause as Error).message}); a JSONL file holds one JSON object per line`,
          {},
          cause,
        );
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw dataError(where, `expected a JSON object per line, got ${kind(value)}`);
      }
      yield { row: value as Record<string, unknown>, where };
    }
  } catch (cause) {
    throw cause instanceof TroupeError ? cause : readError(file, cause);
  } finally {
    lines.close();
    stream.destroy();
  }
}

/** A file that cannot be opened or read: a bad argument (missing file) or bad data (I/O). */
export function readError(file: string, cause: unknown): TroupeError {
  const code = (cause as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') {
    return new TroupeError('BAD_ARGUMENT', `Cannot read ${file}: no such file`, {
      details: { file },
      cause,
    });
  }
  return new TroupeError('BAD_DATA', `Cannot read ${file}: ${(cause as Error)?.message ?? cause}`, {
    details: { file },
    cause,
  });
}
