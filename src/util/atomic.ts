import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';

/**
 * Write `path` through a temporary file in the same directory, synced and then renamed over
 * `path`: a crash leaves either the old file or the new one, never half of one.
 */
export async function writeAtomic(
  path: string,
  write: (fh: FileHandle) => Promise<void>,
): Promise<void> {
  const tmp = tmpName(path);
  const fh = await open(tmp, 'wx');
  try {
    await write(fh);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
}

/** A fresh name beside `path` (same directory, so the rename never crosses file systems). */
function tmpName(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** `writeAtomic` of one string (UTF-8) or byte array. */
export function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  return writeAtomic(path, async (fh) => {
    await fh.writeFile(data);
  });
}

/**
 * `writeFileAtomic` without awaiting: for a writer that runs where no promise can be awaited (a
 * run's report written as the process exits).
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = tmpName(path);
  const fd = openSync(tmp, 'wx');
  try {
    writeFileSync(fd, data); // an fd: written whole, from its start
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Write all of `bytes` at the handle's current position (`write` may write less than asked). */
export async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(bytes.length - done, 1 << 30);
    const { bytesWritten } = await fh.write(bytes, done, n);
    done += bytesWritten;
  }
}
