import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  writeAll,
  writeAtomic,
  writeFileAtomic,
  writeFileAtomicSync,
} from '../../src/util/atomic.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'troupe-atomic-'));

describe('atomic writes', () => {
  it('writeFileAtomic and writeFileAtomicSync replace a file whole and leave no temporary', async () => {
    const dir = fresh();
    const path = join(dir, 'a.json');
    writeFileSync(path, 'old');
    await writeFileAtomic(path, 'new text');
    expect(readFileSync(path, 'utf8')).toBe('new text');
    writeFileAtomicSync(path, new Uint8Array([104, 105]));
    expect(readFileSync(path, 'utf8')).toBe('hi');
    writeFileAtomicSync(join(dir, 'b.txt'), 'ü'.repeat(100_000));
    expect(readFileSync(join(dir, 'b.txt'), 'utf8')).toBe('ü'.repeat(100_000));
    expect(readdirSync(dir).sort()).toEqual(['a.json', 'b.txt']);
  });

  it('a writer that fails leaves the old file as it was, and no temporary', async () => {
    const dir = fresh();
    const path = join(dir, 'out.jsonl');
    writeFileSync(path, 'kept\n');
    await expect(
      writeAtomic(path, async (fh) => {
        await fh.write('half a fi');
        throw new Error('line 2 is bad');
      }),
    ).rejects.toThrow('line 2 is bad');
    expect(readFileSync(path, 'utf8')).toBe('kept\n');
    expect(readdirSync(dir)).toEqual(['out.jsonl']);
  });

  it('writeAll writes every byte at the current position', async () => {
    const dir = fresh();
    const path = join(dir, 'bytes.bin');
    const bytes = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251);
    await writeAtomic(path, async (fh) => {
      await fh.write('head');
      await writeAll(fh, bytes);
    });
    const got = readFileSync(path);
    expect(got.subarray(0, 4).toString()).toBe('head');
    expect(Buffer.compare(got.subarray(4), Buffer.from(bytes))).toBe(0);
  });
});
