import type { HfModelType, ModelConfig } from '../config.js';

/*
 * The transformers model types Troupe reads and writes (hf-config.ts), and the class names each
 * is saved under.
 */

/** A config.json object, as parsed. */
export type Raw = Record<string, unknown>;

export type { HfModelType };

/** Which Troupe family (name layout) each `model_type` uses. */
export const HF_FAMILY: Readonly<Record<HfModelType, ModelConfig['family']>> = {
  gpt2: 'gpt2',
  llama: 'llama',
  qwen2: 'llama',
  qwen3: 'llama',
  mistral: 'llama',
  gemma2: 'llama',
  gemma3_text: 'llama',
  phi3: 'phi3',
};

export const HF_MODEL_TYPES = Object.keys(HF_FAMILY) as HfModelType[];

export const ARCHITECTURE: Readonly<Record<HfModelType, string>> = {
  gpt2: 'GPT2LMHeadModel',
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  mistral: 'MistralForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3_text: 'Gemma3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};

/** The `…ForSequenceClassification` class of each type (a reward model's export). */
export const SEQUENCE_CLASSIFIER: Readonly<Record<HfModelType, string>> = {
  gpt2: 'GPT2ForSequenceClassification',
  llama: 'LlamaForSequenceClassification',
  qwen2: 'Qwen2ForSequenceClassification',
  qwen3: 'Qwen3ForSequenceClassification',
  mistral: 'MistralForSequenceClassification',
  gemma2: 'Gemma2ForSequenceClassification',
  gemma3_text: 'Gemma3TextForSequenceClassification',
  phi3: 'Phi3ForSequenceClassification',
};
