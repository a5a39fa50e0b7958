"""The PyTorch 2.13 (+ PEFT) side of the memory and qlora suites: one job on a Hugging Face
checkpoint, in a process of its own so that its peak RSS is its own.

    /tmp/troupe-anchors/bin/python scripts/bench/torch-memory.py DIR PHASE BATCH SEQ
        [--reps N] [--threads T] [--checkpoint] [--bf16] [--rank R] [--targets q,v]

PHASE: forward (no-grad log-probs of BATCH×SEQ tokens), lora (PEFT LoRA, rank R on the given
projections, alpha 2R, dropout 0; the base frozen), full (every weight). A step is what Troupe's
is: the mean next-token cross-entropy, backward, gradient-norm clip at 1, AdamW (fused, fp32
moments). --bf16: autocast to bfloat16 on the CPU (fp32 master weights, as Troupe's
precision: bf16). --checkpoint: transformers' gradient checkpointing (non-reentrant). The model
is loaded in fp32 (Troupe computes in fp32), eager attention off: SDPA. One warm-up step, then
--reps timed ones. Prints one `RESULT {json}` line: wall and CPU seconds of each timed step,
tokens/s of the median, peak RSS (ru_maxrss, load included) and the RSS after load.

QLoRA has no PyTorch side here: bitsandbytes (PEFT's 4-bit path) is not in the reference venv
and its CPU build is not what people run.
"""

import argparse
import json
import os
import resource
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

NAMES = {
    "q": "q_proj",
    "k": "k_proj",
    "v": "v_proj",
    "o": "o_proj",
    "gate": "gate_proj",
    "up": "up_proj",
    "down": "down_proj",
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("dir")
    a.add_argument("phase", choices=["forward", "lora", "full"])
    a.add_argument("batch", type=int)
    a.add_argument("seq", type=int)
    a.add_argument("--reps", type=int, default=1)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--checkpoint", action="store_true")
    a.add_argument("--bf16", action="store_true")
    a.add_argument("--rank", type=int, default=8)
    a.add_argument("--targets", default="q,v")
    o = a.parse_args()
    torch.set_num_threads(o.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(o.dir, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mib()
    peak_loaded = peak_mib()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab - 1, (o.batch, o.seq), generator=torch.Generator().manual_seed(2))
    trainable = 0
    if o.phase == "lora":
        from peft import LoraConfig, get_peft_model

        targets = [NAMES[t] for t in o.targets.split(",")]
        cfg = LoraConfig(r=o.rank, lora_alpha=2 * o.rank, lora_dropout=0.0, target_modules=targets)
        model = get_peft_model(model, cfg)
    if o.phase != "forward":
        if o.checkpoint:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if o.phase == "lora":
                model.enable_input_require_grads()
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        trainable = sum(p.numel() for p in params)
        opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    else:
        model.eval()

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=o.bf16)

    def step() -> float:
        if o.phase == "forward":
            with torch.no_grad(), autocast():
                logits = model(input_ids=ids).logits.float()
                lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])
            return float(lp.mean())
        with autocast():
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(out.loss)

    wall, cpu, loss = [], [], None
    for rep in range(o.reps + 1):
        w, c = time.perf_counter(), cpu_seconds()
        loss = step()
        if rep > 0:
            wall.append(time.perf_counter() - w)
            cpu.append(cpu_seconds() - c)
    med = sorted(wall)[len(wall) // 2]
    result = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "blas": "MKL (fp32 GEMM)" if torch.backends.mkl.is_available() else "?",
        "openblasCoretype": os.environ.get("OPENBLAS_CORETYPE"),
        "phase": o.phase,
        "bf16": o.bf16,
        "checkpoint": o.checkpoint,
        "batch": o.batch,
        "seq": o.seq,
        "params": sum(p.numel() for p in model.parameters()),
        "trainableParams": trainable,
        "loadS": load_s,
        "rssLoadedMiB": round(rss_loaded),
        "peakRssLoadMiB": round(peak_loaded),
        "peakRssMiB": round(peak_mib()),
        "tokensPerS": o.batch * o.seq / med,
        "seconds": med,
        "cpuSeconds": sorted(cpu)[len(cpu) // 2],
        "wallSeconds": wall,
        "cpuSecondsEach": cpu,
        "loss": loss,
        "loadAverage": os.getloadavg()[0],
    }
    if o.phase == "lora":
        import peft

        result["peft"] = peft.__version__
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
