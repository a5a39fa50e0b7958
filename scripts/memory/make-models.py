"""Random-init checkpoints of real model shapes, for the memory benchmark (developers run this; CI does not).

Qwen2.5-0.5B, Qwen3-0.6B and TinyLlama-1.1B as their published config.json files give them
(written out below: nothing is downloaded), initialised by transformers' own `from_config`
(seeded) and saved with `save_pretrained` in bfloat16, as the published checkpoints are. About
1 GB, 1.2 GB and 2.2 GB: they go to a directory outside the repository, never into it.

    /tmp/troupe-anchors/bin/python scripts/memory/make-models.py [OUT] [--models a,b] [--layers N]
    # OUT: /tmp/troupe-memory; models: qwen2.5-0.5b,qwen3-0.6b by default (llama-1.1b on request)
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/troupe-memory")

CONFIGS = {
    # Qwen/Qwen2.5-0.5B config.json
    "qwen2.5-0.5b": (Qwen2Config, dict(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        tie_word_embeddings=True,
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=24,
        attention_dropout=0.0,
        initializer_range=0.02,
        bos_token_id=151643,
        eos_token_id=151643,
    )),
    # Qwen/Qwen3-0.6B config.json
    "qwen3-0.6b": (Qwen3Config, dict(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        tie_word_embeddings=True,
        attention_bias=False,
        use_sliding_window=False,
        sliding_window=None,
        max_window_layers=28,
        attention_dropout=0.0,
        initializer_range=0.02,
        bos_token_id=151643,
        eos_token_id=151645,
    )),
    # TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T config.json (Llama 2 architecture,
    # 1.10 B parameters): the "largest model that fully fine-tunes in 24 GB" shape
    "llama-1.1b": (LlamaConfig, dict(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=False,
        attention_bias=False,
        initializer_range=0.02,
        bos_token_id=1,
        eos_token_id=2,
    )),
}


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("out", nargs="?", default="/tmp/troupe-memory")
    args.add_argument("--models", default="qwen2.5-0.5b,qwen3-0.6b", help=f"of {', '.join(CONFIGS)}")
    args.add_argument("--layers", type=int, help="fewer blocks (profiling); the directory gets -LAYERSl")
    a = args.parse_args()
    for name in a.models.split(","):
        if name not in CONFIGS:
            sys.exit(f"unknown model '{name}': known {', '.join(CONFIGS)}")
        cls, kwargs = CONFIGS[name]
        kwargs = dict(kwargs)
        if a.layers:
            kwargs["num_hidden_layers"] = a.layers
            if "max_window_layers" in kwargs:
                kwargs["max_window_layers"] = a.layers
        dest = Path(a.out) / (name + (f"-{a.layers}l" if a.layers else ""))
        if (dest / "model.safetensors").exists() or (dest / "model.safetensors.index.json").exists():
            print(f"{dest}: exists")
            continue
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cls(**kwargs), dtype=torch.bfloat16)
        n = sum(p.numel() for p in model.parameters())
        model.save_pretrained(dest)
        print(f"{dest}: {n / 1e6:.1f} M parameters")
        del model


if __name__ == "__main__":
    main()
