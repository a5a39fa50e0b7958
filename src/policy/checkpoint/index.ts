/** Checkpoint IO: safetensors files and Hugging Face model directories, independent of tfjs. */
export {
  DEFAULT_MAX_SHARD_BYTES,
  INDEX_FILE,
  type LoadedDirectory,
  loadHfDirectory,
  type SaveOptions,
  SINGLE_FILE,
  saveHfDirectory,
} from './directory.js';
export {
  f16ToF32,
  f32BitsToBf16,
  READABLE_DTYPES,
  type SafetensorsDtype,
  type WriteDtype,
} from './dtypes.js';
export {
  freshConfig,
  fromHfConfig,
  HF_FAMILY,
  HF_MODEL_TYPES,
  type HfModelType,
  hfConfigJson,
  hfModelType,
  toHfConfig,
  toHfGenerationConfig,
} from './hf-config.js';
export { fromHfStateDict, type HfNameOptions, isHfBuffer, toHfStateDict } from './hf-names.js';
export {
  parseSafetensors,
  type ReadOptions,
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsFile,
  serializeSafetensors,
  type WriteOptions,
  writeSafetensors,
} from './safetensors.js';
export type { SafetensorsHeader, TensorEntry } from './safetensors-header.js';
export type { StateDict, Tensor32 } from './tensor32.js';
