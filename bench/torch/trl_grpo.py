"""TRL's GRPOTrainer on the job bench/suites/rl.ts gives Troupe, for a side-by-side GRPO iteration.

Run by `npm run bench -- --suite rl` with the reference venv's Python (TROUPE_TRL_PYTHON, default
/tmp/troupe-anchors/bin/python: PyTorch 2.13 CPU, transformers 5.x, TRL 1.13; built offline by
../shared/tools/reference-venv.sh). Nothing is downloaded: the model is a GPT-2 of the job's
shape built here from its config (random weights, seeded), the tokenizer is the one Troupe
trained and saved for the job (--tokenizer, a directory with tokenizer.json), the prompts are
the job's (--prompts, JSONL rows {"prompt": ...}).

The job: --prompts-per-step prompts × --samples completions of up to --new-tokens tokens per
iteration, one optimiser step on all of them (TRL: per_device_train_batch_size = prompts ×
samples, num_generations = samples, num_iterations 1), β = --beta with the k3 estimator (a
reference model when β > 0), the reward −|characters − --target| / --target (Troupe's `length`
source), gradient checkpointing and dropout off (as Troupe's defaults), fp32, AdamW.

Each iteration (generation, scoring, loss, backward, optimiser step) is timed from the trainer's
on_step_begin to its on_step_end, in wall-clock and CPU seconds (every thread of the process).
Writes one JSON object to --out: {"torch", "trl", "transformers", "threads", "steps": [wall
seconds per iteration, ...], "cpu": [CPU seconds per iteration, ...]}.
"""

import argparse
import json
import os
import resource
import tempfile
import time

import torch
import transformers
import trl
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback
from trl import GRPOConfig, GRPOTrainer


def cpu_seconds():
    """CPU time of this process so far, every thread (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class StepTimes(TrainerCallback):
    """Wall-clock and CPU seconds of each optimiser step (one GRPO iteration here)."""

    def __init__(self):
        self.seconds = []
        self.cpu = []
        self.t0 = 0.0
        self.c0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()
        self.c0 = cpu_seconds()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.t0)
        self.cpu.append(cpu_seconds() - self.c0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--prompts", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--positions", type=int, default=128)
    p.add_argument("--beta", type=float, default=0.001)
    p.add_argument("--target", type=float, default=100.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(a.tokenizer, "tokenizer.json"))
    with open(os.path.join(a.tokenizer, "tokenizer_config.json")) as f:
        special = json.load(f)
    for k in ("eos_token", "pad_token", "bos_token"):
        if special.get(k):
            setattr(tok, k, special[k])
    vocab = len(tok)
    if tok.eos_token is None:
        # The job's tokenizer has no EOS, so in Troupe every completion runs its full length. TRL
        # masks completions after the first EOS and needs an id for it: one past the model's
        # vocabulary, which it can never sample, has the same effect.
        tok.add_special_tokens({"eos_token": "<|no-eos|>"})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token_id < vocab else tok.convert_ids_to_tokens(0)
    tok.padding_side = "left"

    with open(a.prompts) as f:
        prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
    # As many prompts as the steps take, in order (Troupe's loader shuffles; the lengths are equal).
    rows = [prompts[i % len(prompts)] for i in range(a.steps * a.prompts_per_step)]
    dataset = Dataset.from_dict({"prompt": rows})

    config = GPT2Config(
        vocab_size=vocab,
        n_positions=a.positions,
        n_embd=a.hidden,
        n_layer=a.layers,
        n_head=a.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id

    def length_reward(completions, **kwargs):
        return [-abs(len(c) - a.target) / a.target for c in completions]

    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        # TRL builds the reference model from the policy's path: save it there first.
        path = os.path.join(out, "model")
        model.save_pretrained(path)
        tok.save_pretrained(path)
        args = GRPOConfig(
            output_dir=os.path.join(out, "run"),
            use_cpu=True,
            bf16=False,
            seed=0,
            max_steps=a.steps,
            per_device_train_batch_size=a.prompts_per_step * a.samples,
            gradient_accumulation_steps=1,
            num_generations=a.samples,
            num_iterations=1,
            max_completion_length=a.new_tokens,
            temperature=1.0,
            beta=a.beta,
            learning_rate=1e-5,
            lr_scheduler_type="constant",
            gradient_checkpointing=False,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(
            model=path,
            reward_funcs=length_reward,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            callbacks=[times],
        )
        trainer.train()
    with open(a.out, "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "trl": trl.__version__,
                "transformers": transformers.__version__,
                "threads": torch.get_num_threads(),
                "steps": times.seconds,
                "cpu": times.cpu,
            },
            f,
        )


if __name__ == "__main__":
    main()
