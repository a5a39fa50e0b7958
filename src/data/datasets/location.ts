import { TroupeError } from '../../errors.js';

/** Where a row came from: a file and its 1-based line (JSONL) or 0-based row index (Parquet). */
export interface DataLocation {
  readonly file: string;
  readonly line?: number;
  readonly row?: number;
}

/** `data.jsonl:12`, `data.parquet row 7`, or the file alone. */
export function formatLocation(where: DataLocation): string {
  if (where.line !== undefined) return `${where.file}:${where.line}`;
  if (where.row !== undefined) return `${where.file} row ${where.row}`;
  return where.file;
}

/** A BAD_DATA error whose message starts with the location and whose details carry it. */
export function dataError(
  where: DataLocation | undefined,
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): TroupeError {
  const prefix = where ? `${formatLocation(where)}: ` : '';
  return new TroupeError('BAD_DATA', prefix + message, {
    details: { ...(where ?? {}), ...details },
    cause,
  });
}
