/**
 * glibc's malloc in transparent huge pages for the `troupe` command (#17).
 *
 * The cpu backend allocates every op's output afresh, and glibc maps each large block anew, so a
 * big model's step touches fresh 4 KB pages all the time: a TinyLlama-1.1B-shaped full bf16
 * fine-tune step (1 × 256 tokens, AdamW, checkpointing, one thread, Zen 5) took 7.4 M page faults
 * and 17.7 s; with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc ≥ 2.35: malloc asks for
 * transparent huge pages with madvise) 0.24 M faults and 12.3 s, the same loss bit for bit and
 * 4 % more peak RSS. A tunable is read when a process starts, so `troupe` starts its command in
 * a child process with it set (bin.ts). Not where the user set GLIBC_TUNABLES (theirs is kept),
 * with TROUPE_HUGE_PAGES=0, or where the C library is not glibc. A library user sets it in the
 * environment of their own process.
 */

export const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/** The environment to restart `troupe` in, or undefined to run it in this process. */
export function hugePagesEnv(
  env: NodeJS.ProcessEnv,
  glibc: boolean,
): NodeJS.ProcessEnv | undefined {
  if (!glibc || env.TROUPE_HUGE_PAGES === '0' || env.GLIBC_TUNABLES !== undefined) return undefined;
  return { ...env, GLIBC_TUNABLES: HUGE_PAGES_TUNABLE };
}

/** Whether this process runs on glibc (its report names the runtime's version). */
export function onGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: unknown } };
  return typeof report?.header?.glibcVersionRuntime === 'string';
}
