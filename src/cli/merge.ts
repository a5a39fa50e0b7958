import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { TroupeError } from '../errors.js';
import { startRuntime } from '../kernels/runtime.js';
import { mergeToDirectory } from '../policy/merge.js';
import { describeModelSource, resolveModelSource } from '../policy/source.js';

export const MERGE_USAGE =
  'troupe merge --model LORA_CHECKPOINT|RUN --output DIR [--dtype f32|bf16] [--backend NAME]';

/** `troupe merge`: a LoRA checkpoint's base with its adapter merged in, as a plain HF directory. */
export async function runMerge(args: string[], log: (line: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      output: { type: 'string' },
      dtype: { type: 'string', default: 'f32' },
      backend: { type: 'string', default: 'auto' },
    },
    strict: true,
  });
  for (const k of ['model', 'output'] as const) {
    if (!values[k])
      throw new TroupeError('BAD_ARGUMENT', `--${k} is required. Usage: ${MERGE_USAGE}`);
  }
  const dtype = values.dtype.toUpperCase();
  if (dtype !== 'F32' && dtype !== 'BF16') {
    throw new TroupeError('BAD_ARGUMENT', `--dtype must be f32 or bf16, got '${values.dtype}'`);
  }
  await startRuntime({ backend: values.backend as never });
  const source = await resolveModelSource(values.model!, { field: '--model' });
  log(`--model ${source.path}: ${describeModelSource(source)}`);
  if (source.adapters.length === 0) log('it holds no LoRA adapter: the model is written as it is');
  const r = await mergeToDirectory(source, values.output!, { dtype });
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  log(
    `wrote ${rel(r.output)}: config.json, model.safetensors (${dtype})` +
      (r.copied.length > 0 ? `, ${r.copied.map((c) => c.file).join(', ')}` : ''),
  );
  return 0;
}
