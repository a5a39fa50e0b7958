import { relative } from 'node:path';
import { TroupeError } from '../errors.js';
import { startRuntime } from '../kernels/runtime.js';
import { mergeToDirectory } from '../policy/merge.js';
import { describeModelSource, resolveModelSource } from '../policy/source.js';
import { type CommandSpec, helpOf, parseOptions, usageOf } from './options.js';

export const MERGE_SPEC: CommandSpec = {
  name: 'merge',
  summary:
    'a LoRA checkpoint (or a run) as a plain Hugging Face model: base + adapter merged, tokenizer copied',
  options: [
    {
      name: 'model',
      type: 'string',
      value: 'LORA_CHECKPOINT|RUN',
      required: true,
      help: 'a LoRA checkpoint, or a run directory (its best checkpoint)',
    },
    {
      name: 'output',
      type: 'string',
      value: 'DIR',
      required: true,
      help: 'a new or empty directory',
    },
    { name: 'dtype', type: 'string', value: 'f32|bf16', default: 'f32', help: 'weights dtype' },
    { name: 'backend', type: 'string', value: 'NAME', default: 'auto', help: 'tensor backend' },
  ],
};

export const MERGE_USAGE = usageOf(MERGE_SPEC);

/** `troupe merge`: a LoRA checkpoint's base with its adapter merged in, as a plain HF directory. */
export async function runMerge(args: string[], log: (line: string) => void): Promise<number> {
  const parsed = parseOptions(MERGE_SPEC, args);
  if (!parsed) {
    process.stdout.write(helpOf(MERGE_SPEC));
    return 0;
  }
  const values = parsed.values as { model: string; output: string; dtype: string; backend: string };
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
