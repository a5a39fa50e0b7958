export { extractPrompt } from './extract-prompt.js';
export {
  type CompletionExample,
  DATASET_FORMATS,
  type DatasetFormat,
  detectFormat,
  type Example,
  type MessagesExample,
  type ParseOptions,
  type PreferenceExample,
  type PromptExample,
  parseExample,
  type TextExample,
} from './formats.js';
export { type RawRow, readJsonl } from './jsonl.js';
export { type DataLocation, formatLocation } from './location.js';
export { readParquet } from './parquet.js';
export { loadExamples, type ReadOptions, readExamples, readRows } from './read.js';
