/**
 * The data layer: chat templates, datasets in the conventions people already use, and the
 * tokenizing, packing, collation and loading that turn them into batches. (The tokenizer lives in
 * ./tokenizer and is exported from there.)
 */
export * from './batching/index.js';
export {
  CHATML_TEMPLATE,
  type ChatTemplateOptions,
  renderChat,
  type TokenizeChatOptions,
  type TokenizedChat,
  tokenizeChat,
} from './chat.js';
export {
  type CompletionExample,
  DATASET_FORMATS,
  type DataLocation,
  type DatasetFormat,
  detectFormat,
  type Example,
  extractPrompt,
  formatLocation,
  loadExamples,
  type MessagesExample,
  type ParseOptions,
  type PreferenceExample,
  type PromptExample,
  parseExample,
  type RawRow,
  type ReadOptions,
  readExamples,
  readJsonl,
  readParquet,
  readRows,
  type TextExample,
} from './datasets/index.js';
export {
  type ChatMessage,
  type Conversation,
  conversationProblem,
  isConversation,
  ROLES,
  type Role,
} from './messages.js';
export { loadTrainEval, type SplitOptions, splitTrainEval, type TrainEvalFiles } from './split.js';
