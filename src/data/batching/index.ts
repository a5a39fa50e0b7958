export {
  type CollateOptions,
  collateBlocks,
  collatePreferences,
  collatePrompts,
  collateSft,
  leftPad,
  type PreferenceBatch,
  type PromptBatch,
  rightPad,
  type TokenBatch,
  type TrainBatch,
} from './collate.js';
export {
  type PreferenceItem,
  type PromptItem,
  type SftItem,
  type TokenizeOptions,
  tokenizePreference,
  tokenizePrompt,
  tokenizeSft,
} from './examples.js';
export { type LengthOptions, truncatePrompt } from './length.js';
export { DataLoader, type DataLoaderOptions, type LoaderPosition } from './loader.js';
export { type PackedBlock, Packer, type PackOptions, packDocuments } from './pack.js';
