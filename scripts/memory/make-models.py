"""Random-init checkpoints of real model shapes, for the memory benchmark (developers run this; CI does not).

Qwen2.5-0.5B, Qwen3-0.6B and TinyLlama-1.1B as their published config.json files give them
(written out in configs.json: nothing is downloaded), initialised by transformers' own `from_config`
(seeded) and saved with `save_pretrained` in bfloat16, as the published checkpoints are. About
1 GB, 1.2 GB and 2.2 GB: they go to a directory outside the repository, never into it.

    /tmp/troupe-anchors/bin/python scripts/memory/make-models.py [OUT] [--models a,b] [--layers N]
    # OUT: /tmp/troupe-memory; models: qwen2.5-0.5b,qwen3-0.6b by default (llama-1.1b on request)
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/troupe-memory")

# The published config.json fields of each model, in one file that scripts/memory/phase-peaks.ts
# reads too: {name: {source, class, config}}.
CLASSES = {"Qwen2Config": Qwen2Config, "Qwen3Config": Qwen3Config, "LlamaConfig": LlamaConfig}
CONFIGS = {
    name: (CLASSES[entry["class"]], entry["config"])
    for name, entry in json.loads((Path(__file__).parent / "configs.json").read_text()).items()
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
