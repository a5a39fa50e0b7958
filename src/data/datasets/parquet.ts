import {
  asyncBufferFromFile,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
} from 'hyparquet';
import { TroupeError } from '../../errors.js';
import { type RawRow, readError } from './jsonl.js';
import { dataError } from './location.js';

/**
 * Stream a Parquet file one row group at a time (hyparquet reads only that group's column
 * chunks), yielding object rows. Row indices are 0-based over the whole file. INT64 values that
 * fit a double become numbers, so rows stay plain JSON-like data.
 */
export async function* readParquet(
  file: string,
  opts: { readonly columns?: readonly string[] } = {},
): AsyncGenerator<RawRow> {
  let buffer: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  try {
    buffer = await asyncBufferFromFile(file);
  } catch (cause) {
    throw readError(file, cause);
  }
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (cause) {
    throw dataError(
      { file },
      `not a readable Parquet file (${(cause as Error).message})`,
      {},
      cause,
    );
  }
  const columns = opts.columns ? [...opts.columns] : undefined;
  if (columns) {
    const known = new Set(metadata.schema.slice(1).map((s) => s.name));
    const absent = columns.filter((c) => !known.has(c));
    if (absent.length > 0) {
      throw dataError(
        { file },
        `no column ${absent.map((c) => `'${c}'`).join(', ')} (the file has ${[...known].map((c) => `'${c}'`).join(', ')})`,
        { column: absent[0] },
      );
    }
  }
  let rowStart = 0;
  for (let g = 0; g < metadata.row_groups.length; g++) {
    const rowEnd = rowStart + Number(metadata.row_groups[g].num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd, columns });
    } catch (cause) {
      if (cause instanceof TroupeError) throw cause;
      throw dataError(
        { file, row: rowStart },
        `cannot decode row group ${g} (rows ${rowStart}–${rowEnd - 1}): ${(cause as Error).message}`,
        { rowGroup: g },
        cause,
      );
    }
    for (let i = 0; i < rows.length; i++) {
      yield { row: plain(rows[i]) as Record<string, unknown>, where: { file, row: rowStart + i } };
    }
    rowStart = rowEnd;
  }
}

/** Safe-integer bigints → numbers, recursively through lists and objects. */
function plain(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (Array.isArray(value)) return value.map(plain);
  if (
    value !== null &&
    typeof value === 'object' &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}
