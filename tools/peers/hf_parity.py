#!/usr/bin/env python3
"""Kvasir against Hugging Face transformers on random-initialized checkpoints (issue 3 parity).

  python3 tools/peers/hf_parity.py make DIR      # checkpoints (save_pretrained) + transformers outputs
  (ci/gpu.sh runs kvasir generate on every case, device and dtype, into DIR/out)
  python3 tools/peers/hf_parity.py compare DIR   # the table; exit 1 when a criterion fails

Cases: LlamaForCausalLM with llama3 RoPE scaling and GQA, Qwen3ForCausalLM with tied
embeddings, MistralForCausalLM (no sliding window), Qwen2ForCausalLM (q/k/v biases);
initializer_range 0.05 (KVASIR_PARITY_INIT overrides) so that logits are far from uniform (the
table reports the reference's top-1 probability) yet the random network is not chaotic: at 0.1
a bf16 rounding of the weights alone moves the logits by 3-7% of their spread, and transformers'
own bf16 run misses the 3e-2 criterion by 2-3.6x (docs/perf/2026-11-29-parity.md).
Criteria (issue 3): max |logits - ref| / std(ref) < 1e-3 in fp32 and < 3e-2 in bf16, at the last
prompt position, the reference being transformers in fp32 for both; 64 greedy tokens identical in
fp32 up to the first step where the fp32 reference's top-2 margin is below 1e-4. Transformers' own
bf16 run against its fp32 run is reported beside them as the yardstick of bf16 rounding; for a
trained checkpoint (KVASIR_PARITY_EXTRA) the bf16 bar is the larger of 3e-2 and that yardstick,
since its weights cannot be chosen to keep bf16 rounding small (kvasir-ref: transformers bf16
5.5e-2, Kvasir CUDA bf16 3.3e-2, 2026-11-29).

KVASIR_PARITY_CASES="a,b" runs only the named cases.
KVASIR_PARITY_EXTRA="name=DIR;..." adds trained checkpoints (the reference model,
models/kvasir-ref) as cases, loaded with AutoModelForCausalLM; their prompt is a real sentence
through the checkpoint's own tokenizer.json.
"""
import json
import os
import pathlib
import sys

import numpy as np
import torch
import transformers

SEED = 20261129
PROMPT_LEN = 48
NEW_TOKENS = 64
INIT = float(os.environ.get("KVASIR_PARITY_INIT", "0.05"))
COMMON = dict(vocab_size=1000, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
              num_attention_heads=8, max_position_embeddings=8192, initializer_range=INIT)


def configs():
    t = transformers
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 1024}
    return {
        "llama": (t.LlamaForCausalLM, t.LlamaConfig(**COMMON, num_key_value_heads=2, head_dim=64, rms_norm_eps=1e-5,
                                                     rope_theta=500000.0, rope_scaling=llama3,
                                                     tie_word_embeddings=False)),
        "qwen3": (t.Qwen3ForCausalLM, t.Qwen3Config(**COMMON, num_key_value_heads=4, head_dim=128, rms_norm_eps=1e-6,
                                                     rope_theta=1000000.0, tie_word_embeddings=True,
                                                     use_sliding_window=False)),
        "mistral": (t.MistralForCausalLM, t.MistralConfig(**COMMON, num_key_value_heads=2, head_dim=64,
                                                           sliding_window=None, rope_theta=10000.0,
                                                           tie_word_embeddings=False)),
        "qwen2": (t.Qwen2ForCausalLM, t.Qwen2Config(**COMMON, num_key_value_heads=2, rms_norm_eps=1e-6,
                                                     rope_theta=1000000.0, use_sliding_window=False,
                                                     tie_word_embeddings=False)),
    }


EXTRA_PROMPT = ("<|user|>\nThe pass key is 52817. Remember it. And the evening and the morning were the "
                "first day. What is the pass key?<|end|>\n<|assistant|>\n")


def extra_cases():
    """Trained checkpoints named in KVASIR_PARITY_EXTRA: (name, dir) pairs."""
    spec = os.environ.get("KVASIR_PARITY_EXTRA", "")
    return [tuple(item.split("=", 1)) for item in spec.split(";") if item.strip()]


def make(root):
    root.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cases = []
    models = [(name, cls, config, None) for name, (cls, config) in configs().items()]
    models += [(name, transformers.AutoModelForCausalLM, None, pathlib.Path(path)) for name, path in extra_cases()]
    only = os.environ.get("KVASIR_PARITY_CASES")  # e.g. "kvasir-ref": just these cases
    if only:
        models = [m for m in models if m[0] in only.split(",")]
    for name, cls, config, path in models:
        if path is None:
            torch.manual_seed(SEED)
            model = cls(config).float().eval()
            model.save_pretrained(root / name, safe_serialization=True)
            gen = torch.Generator().manual_seed(SEED + len(cases))
            prompt = torch.randint(3, config.vocab_size, (1, PROMPT_LEN), generator=gen)
        else:
            import shutil
            import tokenizers
            shutil.copytree(path, root / name, dirs_exist_ok=True)
            model = cls.from_pretrained(root / name, dtype=torch.float32).eval()
            tok = tokenizers.Tokenizer.from_file(str(root / name / "tokenizer.json"))
            prompt = torch.tensor([tok.encode(EXTRA_PROMPT, add_special_tokens=False).ids])
        prompt_len = prompt.shape[1]
        case = {"name": name, "prompt": prompt[0].tolist(), "trained": path is not None}
        for dtype, label in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            m = cls.from_pretrained(root / name, dtype=dtype, attn_implementation="eager").to(device).eval()
            with torch.no_grad():
                logits = m(prompt.to(device)).logits[0, -1].float().cpu().numpy()
            np.save(root / f"{name}.hf-{label}.npy", logits)
            if label == "f32":
                with torch.no_grad():
                    out = m.generate(prompt.to(device), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                     do_sample=False, eos_token_id=None, pad_token_id=0, output_scores=True,
                                     return_dict_in_generate=True)
                case["greedy"] = out.sequences[0, prompt_len:].tolist()
                margins = []
                for scores in out.scores:
                    top2 = torch.topk(scores[0].float(), 2).values
                    margins.append(float(top2[0] - top2[1]))
                case["margins"] = margins
        cases.append(case)
        print(f"made {name}: {sum(p.numel() for p in model.parameters())} parameters")
    (root / "cases.json").write_text(json.dumps(cases))
    (root / "prompts.txt").write_text("".join(f"{c['name']} {','.join(map(str, c['prompt']))}\n" for c in cases))


def compare(root):
    cases = json.loads((root / "cases.json").read_text())
    rows, failed = [], 0
    for case in cases:
        name = case["name"]
        ref = np.load(root / f"{name}.hf-f32.npy")
        hf_bf16 = np.load(root / f"{name}.hf-bf16.npy")
        p = np.exp(ref - ref.max())
        top1 = float(p.max() / p.sum())
        yardstick = float(np.abs(hf_bf16 - ref).max() / ref.std())
        # A trained checkpoint's weights are what they are (no initializer_range to pick), and its
        # sharper logits amplify bf16 rounding: there the bar is transformers' own bf16 error.
        bf16_bar = max(3e-2, yardstick) if case.get("trained") else 3e-2
        rows.append((name, "transformers", "bf16", f"{yardstick:.2e}", f"top-1 p {top1:.2f}",
                     f"yardstick (bf16 bar {bf16_bar:.1e})"))
        for device in ("cpu", "cuda"):
            for label in ("f32", "bf16"):
                stem = root / "out" / f"{name}-{device}-{label}"
                if not stem.with_suffix(".npy").exists():
                    rows.append((name, device, label, "missing", "", "FAIL"))
                    failed += 1
                    continue
                got = np.load(stem.with_suffix(".npy"))
                rel = float(np.abs(got - ref).max() / ref.std())
                ok = rel < (1e-3 if label == "f32" else bf16_bar)
                greedy = ""
                if label == "f32":
                    ids_line = next(l for l in stem.with_suffix(".txt").read_text().splitlines() if l.startswith("ids: "))
                    ids = [int(x) for x in ids_line[5:].split()]
                    first = next((i for i, (a, b) in enumerate(zip(ids, case["greedy"])) if a != b), None)
                    if first is None and len(ids) == len(case["greedy"]):
                        greedy = "identical"
                    elif first is not None and case["margins"][first] < 1e-4:
                        greedy = f"equal to step {first} (margin {case['margins'][first]:.1e})"
                    else:
                        greedy = f"DIFFERS at step {first}"
                        ok = False
                failed += not ok
                rows.append((name, device, label, f"{rel:.2e}", greedy, "ok" if ok else "FAIL"))
    lines = [f"initializer_range {INIT}; reference: transformers fp32 (eager attention)", "",
             "| model | device | dtype | max abs diff / std | greedy 64 (fp32) | result |", "|---|---|---|---:|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    (root / "parity.md").write_text(table + "\n")
    (root / "parity.json").write_text(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__,
                                                  "initializer_range": INIT, "rows": rows, "failed": failed}))
    return failed


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "compare"):
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[2])
    print("transformers", transformers.__version__, "torch", torch.__version__, flush=True)
    if sys.argv[1] == "make":
        make(root)
    else:
        sys.exit(1 if compare(root) else 0)
