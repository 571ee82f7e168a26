#!/usr/bin/env python3
"""transformers' speed on Llama-3-8B shapes (random weights, bf16, SDPA) for issue 3's
side-by-side: decode tokens/s at batch 1 and 16 (prompt 1024, 128 new tokens) and prefill
tokens/s for an 8K prompt. Fixed configuration; prints one JSON line (and writes it to argv[1]).

  python3 tools/peers/hf_speed.py OUT.json
"""
import json
import sys
import time

import torch
import transformers

PROMPT, NEW, PREFILL = 1024, 128, 8192


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def llama3_8b_config():
    """Llama-3.1-8B's shapes (the synthetic:llama3-8b preset of Kvasir), SDPA attention."""
    return transformers.LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                    max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
                                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                                    tie_word_embeddings=False, attn_implementation="sdpa")


def llama3_8b_model():
    """Llama-3-8B shapes with random bf16 weights, made on the GPU (no download), in eval mode."""
    config = llama3_8b_config()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        return transformers.LlamaForCausalLM(config).eval()


def main(out_path):
    model = llama3_8b_model()
    config = model.config
    result = {"transformers": transformers.__version__, "torch": torch.__version__,
              "device": torch.cuda.get_device_name(0), "model": "llama3-8b shapes, random bf16, sdpa"}
    gen = torch.Generator(device="cuda").manual_seed(0)
    for batch in (1, 16):
        prompt = torch.randint(0, config.vocab_size, (batch, PROMPT), device="cuda", generator=gen)
        kwargs = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=4, min_new_tokens=4, **kwargs)  # warm-up
            _, first = timed(lambda: model.generate(prompt, max_new_tokens=1, min_new_tokens=1, **kwargs))
            _, total = timed(lambda: model.generate(prompt, max_new_tokens=NEW, min_new_tokens=NEW, **kwargs))
        result[f"batch{batch}_ttft_s"] = first
        result[f"batch{batch}_decode_tokens_per_s"] = batch * (NEW - 1) / (total - first)
    prompt = torch.randint(0, config.vocab_size, (1, PREFILL), device="cuda", generator=gen)
    with torch.no_grad():
        model(prompt[:, :512])  # warm-up
        _, t = timed(lambda: model(prompt, use_cache=False))
    result["prefill_8k_tokens_per_s"] = PREFILL / t
    line = json.dumps(result)
    print(line)
    if out_path:
        with open(out_path, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
