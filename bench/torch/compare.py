"""PyTorch's numbers for the workloads Troupe's benchmarks measure, for a side-by-side table.

Run by `npm run bench -- --suite torch` (bench/suites/torch.ts) with the system Python and the
Debian `python3-torch` package (`apt-get install python3-torch`; no pip, no download), once per
--config (matmul, tiny, small, gpt2-124M) so that each process's peak RSS is that config's.
Writes one JSON object to --out: {"torch": version, "cores": n, "rows": [{figure, config,
threads, value, unit}, ...]}.

The workloads mirror bench/suites/matmul.ts and bench/suites/model-measure.ts:
  - fp32 matmul GFLOP/s on the GPT-2-layer shapes (--config matmul), and bf16 matmul GFLOP/s
    on the bf16 kernel's shapes (--config matmul-bf16: bf16 tensors, oneDNN);
  - a GPT-2-family model (the same shapes and tied head as Troupe's gpt2Config): forward
    tokens/s, a training step (fwd + bwd + clip 1.0 + fused AdamW) tokens/s, greedy generation
    with a preallocated KV cache (prompt 32, 64 new tokens, last-position logits) tokens/s at
    batch 1 and 8; attention by F.scaled_dot_product_attention; each the median of >= 5 calls
    after a warm-up (--quick: fewer). --precision bf16: autocast(bfloat16) for forward and
    training (fp32 master weights), bf16 weights for generation.
Each at 1 thread and at every core (torch.set_num_threads).

PyTorch 1.13 (Debian's) has no F.scaled_dot_product_attention and no fused CPU AdamW: there the
attention is the masked product with its causal mask built once (a buffer, not per call) and
AdamW is foreach=True; the JSON's "kernels" says which ran, with the BLAS/oneDNN each reports.
Each timed row carries min/max and the number of calls beside the median ("value").
"""

import argparse
import ctypes
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)

MATMULS = [
    ("linear X·W", (512, 768), (768, 768), False, False),
    ("linear grad dX = dY·Wᵀ", (512, 768), (768, 768), False, True),
    ("linear grad dW = Xᵀ·dY", (512, 768), (512, 768), True, False),
    ("attention Q·Kᵀ (and dP = dO·Vᵀ)", (48, 128, 64), (48, 128, 64), False, True),
    ("attention P·V (and dQ = dS·K)", (48, 128, 128), (48, 128, 64), False, False),
]

CONFIGS = {
    # name: vocab, layers, heads, hidden, batch, seq (as bench/suites/model.ts)
    "tiny": dict(vocab=256, layers=4, heads=4, hidden=128, batch=8, seq=64),
    "small": dict(vocab=512, layers=6, heads=6, hidden=384, batch=8, seq=128),
    "gpt2-124M": dict(vocab=50257, layers=12, heads=12, hidden=768, batch=4, seq=128),
}


class Seconds(float):
    """A median in seconds, with every call's time (`times`) for the noise."""

    times: list


def timed(fn, min_s=0.5, min_calls=3):
    """Median seconds per call, after one warm-up call: calls until min_s and min_calls."""
    fn()
    times, t0 = [], time.perf_counter()
    while True:
        c0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - c0)
        if time.perf_counter() - t0 >= min_s and len(times) >= min_calls:
            s = Seconds(statistics.median(times))
            s.times = times
            return s


def rate(figure, config, threads, work, s, unit):
    """A row: `work` per second at the median call (value), the fastest (max) and slowest (min)."""
    return dict(figure=figure, config=config, threads=threads, value=work / s, unit=unit,
                max=work / min(s.times), min=work / max(s.times), samples=len(s.times))


HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
# CPU fused AdamW came after 1.13; foreach clipping in 2.0
FUSED_ADAMW = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 4)
CLIP_FOREACH = {"foreach": True} if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 0) else {}


def causal_attention(q, k, v, causal, mask):
    """softmax(q·kᵀ/√d + mask)·v, the mask a slice of one buffer built at init (PyTorch < 2.0)."""
    T, S = q.shape[-2], k.shape[-2]
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        att = att.masked_fill(mask[S - T : S, :S], float("-inf"))
    return torch.softmax(att.float(), dim=-1).to(q.dtype) @ v


def kernels():
    """What each library says it runs: OpenBLAS's core (when PyTorch loaded it), MKL, oneDNN."""
    out = dict(attention="sdpa" if HAS_SDPA else "masked matmul (mask built once)",
               adamw="fused" if FUSED_ADAMW else "foreach",
               aten=os.environ.get("ATEN_CPU_CAPABILITY") or "default")
    cfg = torch.__config__.show()
    out["blas"] = "mkl" if "BLAS_INFO=mkl" in cfg else "system libblas"
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            lib = ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
        except OSError:
            continue
        lib.openblas_get_config.restype = ctypes.c_char_p
        out["blas"] = lib.openblas_get_config().decode()
        break
    for line in cfg.splitlines():
        if "Math Kernel Library" in line:
            out["mkl"] = line.strip(" -")
        if "MKL-DNN" in line:
            out["onednn"] = line.strip(" -")
        if "CPU capability usage" in line:
            out["capability"] = line.split(":")[-1].strip()
    return out


class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d, eps=1e-5)
        self.c_attn = torch.nn.Linear(d, 3 * d)
        self.c_proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d, eps=1e-5)
        self.fc = torch.nn.Linear(d, 4 * d)
        self.proj = torch.nn.Linear(4 * d, d)
        if not HAS_SDPA:  # True above the diagonal, built once
            self.register_buffer("mask", torch.ones(256, 256, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, x, cache=None, past=0):
        B, T, d = x.shape
        h = self.heads
        q, k, v = self.c_attn(self.ln1(x)).split(d, dim=2)
        q, k, v = (t.view(B, T, h, d // h).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            # a preallocated cache [B, h, capacity, hd], written in place (no torch.cat per step)
            if "k" not in cache:
                cache["k"] = k.new_empty(B, h, cache["capacity"], d // h)
                cache["v"] = v.new_empty(B, h, cache["capacity"], d // h)
            cache["k"][:, :, past : past + T] = k
            cache["v"][:, :, past : past + T] = v
            k, v = cache["k"][:, :, : past + T], cache["v"][:, :, : past + T]
        # SDPA (PyTorch's fused attention); one new token sees every cached key: no mask
        if HAS_SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        else:
            y = causal_attention(q, k, v, T > 1, self.mask)
        y = y.transpose(1, 2).reshape(B, T, d)
        x = x + self.c_proj(y)
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT2(torch.nn.Module):
    def __init__(self, vocab, layers, heads, hidden, max_positions=256):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, hidden)
        self.wpe = torch.nn.Embedding(max_positions, hidden)
        self.blocks = torch.nn.ModuleList(Block(hidden, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(hidden, eps=1e-5)
        for p in self.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids, caches=None, past=0, last_only=False):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(past, past + T))
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i], past)
        if last_only:  # generation reads the last position's logits only
            x = x[:, -1:]
        return self.ln_f(x) @ self.wte.weight.T  # tied head


# bf16 products (bench/suites/matmul.ts times Troupe's bf16Gemm on the same shapes): bf16
# tensors, so PyTorch runs oneDNN's bf16 matmul with no conversion in the timing.
BF16_MATMULS = [
    ("linear X·W", (512, 768), (768, 768), False, False),
    ("linear grad dX = dY·Wᵀ", (512, 768), (768, 768), False, True),
    ("linear grad dW = Xᵀ·dY", (512, 768), (512, 768), True, False),
    ("square 2048³", (2048, 2048), (2048, 2048), False, False),
]


# A product whose predicted time (from a 256³ probe) passes this is not timed: on CPUs without
# bf16 instructions PyTorch 2.13 multiplies bf16 tensors at ~1 GFLOP/s (a Zen 3, 2026-12-04:
# 1024³ 2.2 s), where the suite's 2048³ alone would take minutes.
SLOW_CALL_S = 2.0


def probe_gflops(dtype):
    A, Bm = torch.randn(256, 256).to(dtype), torch.randn(256, 256).to(dtype)
    A @ Bm
    t = time.perf_counter()
    A @ Bm
    return 2 * 256**3 / (time.perf_counter() - t) / 1e9


def matmul_rows(table, dtype, threads, quick, figure):
    rows = []
    probe = probe_gflops(dtype)
    for name, a, b, ta, tb in table:
        A, Bm = torch.randn(a).to(dtype), torch.randn(b).to(dtype)
        A = A.transpose(-2, -1) if ta else A
        Bm = Bm.transpose(-2, -1) if tb else Bm
        M, K = A.shape[-2], A.shape[-1]
        N = Bm.shape[-1]
        batch = A.shape[0] if A.dim() == 3 else 1
        predicted = 2 * batch * M * N * K / 1e9 / probe
        if predicted > SLOW_CALL_S:
            print(f"{figure} {name}: not timed, a call would take ~{predicted:.0f} s "
                  f"(256³ probe: {probe:.1f} GFLOP/s)", file=sys.stderr, flush=True)
            continue
        s = timed(lambda: A @ Bm, min_s=0.2 if quick else 0.5, min_calls=5)
        rows.append(rate(f"{figure} {name}", "gpt2-layer", threads, 2 * batch * M * N * K / 1e9, s,
                         "GFLOP/s"))
    return rows


def model_rows(name, c, threads, quick, precision="fp32", generate_only=False):
    """fp32, or bf16: training and forward under torch.autocast('cpu', dtype=torch.bfloat16)
    (fp32 master weights, as Troupe's precision bf16), generation with the weights in bf16.
    generate_only: generation alone (no forward, no training)."""
    rows = []
    torch.manual_seed(0)
    m = GPT2(c["vocab"], c["layers"], c["heads"], c["hidden"])
    B, T = c["batch"], c["seq"]
    ids = torch.randint(0, c["vocab"], (B, T))
    bf16 = precision == "bf16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    big = c["hidden"] >= 768
    reps = 5 if big else 10
    if not generate_only:
        with torch.no_grad(), autocast():
            s = timed(lambda: m(ids), min_s=0.3 if quick else 1.0, min_calls=2 if quick else reps)
        rows.append(rate("forward", name, threads, B * T, s, "tokens/s"))
        # fused AdamW (one kernel over all parameters), as PyTorch users train; foreach before 2.4
        fused = {"fused": True} if FUSED_ADAMW else {"foreach": True}
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, **fused)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                logits = m(ids)
                loss = F.cross_entropy(
                    logits[:, :-1].reshape(-1, c["vocab"]).float(), ids[:, 1:].reshape(-1)
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0, **CLIP_FOREACH)
            opt.step()

        s = timed(step, min_s=0.5 if quick else 2.0, min_calls=2 if quick else reps)
        rows.append(rate("train", name, threads, B * T, s, "tokens/s"))
    if bf16:
        m = m.to(torch.bfloat16)  # generation: bf16 weights
    for gb in (1, 8):
        prompt = torch.randint(0, c["vocab"], (gb, 32))

        @torch.no_grad()
        def gen():
            caches = [dict(capacity=96) for _ in m.blocks]
            logits = m(prompt, caches, 0, last_only=True)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            for t in range(63):
                logits = m(nxt, caches, 32 + t, last_only=True)
                nxt = logits[:, -1].argmax(-1, keepdim=True)

        s = timed(gen, min_s=0.3 if quick else 1.0, min_calls=1 if quick else 5)
        rows.append(rate(f"generate b{gb}", name, threads, gb * 64, s, "tokens/s"))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", required=True, choices=["matmul", "matmul-bf16", *CONFIGS])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        help="one thread count (the caller also sets OPENBLAS_NUM_THREADS and OMP_NUM_THREADS to it "
        "before Python starts: torch.set_num_threads does not reach Debian's OpenBLAS pool, which "
        "otherwise takes every core); default: 1 and every core in this process",
    )
    ap.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: forward and training under torch.autocast(bfloat16), generation with bf16 weights",
    )
    ap.add_argument(
        "--only",
        choices=["generate"],
        help="generate: a model config's generation rows alone (no forward, no training)",
    )
    args = ap.parse_args()
    rows = []
    wall0, use0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    cores = os.cpu_count() or 1
    for threads in [args.threads] if args.threads else sorted({1, cores}):
        torch.set_num_threads(threads)
        if args.config == "matmul":
            rows += matmul_rows(MATMULS, torch.float32, threads, args.quick, "matmul")
        elif args.config == "matmul-bf16":
            rows += matmul_rows(BF16_MATMULS, torch.bfloat16, threads, args.quick, "bf16 matmul")
        else:
            rows += model_rows(args.config, CONFIGS[args.config], threads, args.quick, args.precision,
                               args.only == "generate")
    use = resource.getrusage(resource.RUSAGE_SELF)
    rows.append(dict(figure="peak RSS", config=args.config, threads=0, value=use.ru_maxrss * 1024, unit="bytes"))
    # CPU time over wall time while measuring: ~1 at one thread says it kept to one core (and
    # well under the thread count, that the machine was busy with something else)
    cpu = use.ru_utime + use.ru_stime - use0.ru_utime - use0.ru_stime
    busy = cpu / (time.perf_counter() - wall0)
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "cores": cores, "kernels": kernels(),
                   "cpuPerWall": busy, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
