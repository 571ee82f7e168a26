#!/usr/bin/env python3
"""transformers' batched generate on the exact workload of a `kvasir-bench serve` run (issue 5's
offline comparison): reads the JSON that `kvasir-bench serve --export-workload FILE` wrote (prompt
token ids, output lengths), builds Llama-3-8B shapes with random bf16 weights on the GPU as
hf_speed.py does, and runs `model.generate` over the requests: greedy, exactly the requested
number of new tokens (min_new_tokens = max_new_tokens, no EOS), KV cache on, left padding.

Requests are sorted by prompt length, longest first, and cut into batches of B in that order, so
that padding stays small (the record says so: it favours transformers). B is the largest size of
--batch-sizes whose batches fit: on an out-of-memory error the run restarts at the next smaller
size, and the attempt is not counted. Output tokens/s is all generated tokens over the wall time
of all batches (CUDA synchronized around it), after one small warm-up generate.

  python3 tools/peers/hf_generate_bench.py WORKLOAD.json --out RECORD.json [--max-requests N]
"""
import argparse
import json
import os
import sys
import time

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_speed import llama3_8b_model  # noqa: E402  (the same synthetic model as the speed peer)


def load_workload(path, max_requests, output_tokens):
    with open(path) as f:
        w = json.load(f)
    if w.get("format") != "kvasir-serve-workload/1":
        sys.exit(f"{path}: not a kvasir-bench serve workload (format {w.get('format')!r})")
    reqs = w["requests"][:max_requests] if max_requests else w["requests"]
    out = []
    for i, r in enumerate(reqs):
        out.append({"index": i, "prompt": r["prompt"], "new": output_tokens or r["output_tokens"]})
    return w, out


def batches(requests, size):
    ordered = sorted(requests, key=lambda r: len(r["prompt"]), reverse=True)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def left_padded(batch, pad_id):
    longest = max(len(r["prompt"]) for r in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, r in enumerate(batch):
        n = len(r["prompt"])
        ids[row, longest - n:] = torch.tensor(r["prompt"], dtype=torch.long)
        mask[row, longest - n:] = 1
    return ids.cuda(), mask.cuda(), longest


def run_all(model, requests, size):
    """Generates every batch at this size; returns (seconds, generated tokens, padded prompt tokens)."""
    generated = 0
    padded = 0
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for batch in batches(requests, size):
        new = max(r["new"] for r in batch)
        if any(r["new"] != new for r in batch):
            sys.exit("requests of one batch ask for different output lengths; this peer runs one length per batch")
        ids, mask, longest = left_padded(batch, pad_id=0)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                 do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0)
        got = out.shape[1] - longest
        if got != new:
            sys.exit(f"generate returned {got} new tokens per sequence, not {new}")
        generated += len(batch) * new
        padded += len(batch) * longest
        del out, ids, mask
    torch.cuda.synchronize()
    return time.perf_counter() - t0, generated, padded


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", help="JSON written by kvasir-bench serve --export-workload")
    ap.add_argument("--out", help="write the record (JSON) here")
    ap.add_argument("--batch-sizes", default="64,32,16,8,4,2,1",
                    help="batch sizes to try, largest first (default %(default)s)")
    ap.add_argument("--max-requests", type=int, default=0, help="only the first N requests (a quick check)")
    ap.add_argument("--output-tokens", type=int, default=0, help="override every request's output length")
    args = ap.parse_args()

    workload, requests = load_workload(args.workload, args.max_requests, args.output_tokens)
    model = llama3_8b_model()
    with torch.no_grad():  # warm-up: kernels, cuBLAS heuristics, the generate machinery
        warm = torch.randint(0, model.config.vocab_size, (2, 64), device="cuda")
        model.generate(warm, max_new_tokens=4, min_new_tokens=4, do_sample=False, eos_token_id=None, pad_token_id=0)

    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    sizes = sorted({min(s, len(requests)) for s in sizes if s > 0}, reverse=True)
    oom = []
    result = None
    for size in sizes:
        try:
            seconds, generated, padded = run_all(model, requests, size)
        except torch.OutOfMemoryError:
            oom.append(size)
            torch.cuda.empty_cache()
            print(f"batch {size}: out of memory, trying a smaller batch", file=sys.stderr)
            continue
        result = (size, seconds, generated, padded)
        break
    if result is None:
        sys.exit(f"every batch size ran out of memory: {oom}")
    size, seconds, generated, padded = result
    prompt_tokens = sum(len(r["prompt"]) for r in requests)
    record = {
        "record": "kvasir-peer/1",
        "topic": "serve-offline-transformers",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0),
        "model": "llama3-8b shapes, random bf16 weights, sdpa",
        "workload": os.path.basename(args.workload),
        "workload_seed": workload.get("seed"),
        "requests": len(requests),
        "prompt_tokens": prompt_tokens,
        "padded_prompt_tokens": padded,
        "output_tokens": generated,
        "method": ("model.generate, greedy, min_new_tokens = max_new_tokens (no EOS), use_cache, left padding; "
                   "requests sorted by prompt length (longest first) and batched in that order to reduce padding"),
        "batch_size": size,
        "batch_sizes_out_of_memory": oom,
        "time_s": seconds,
        "output_tokens_per_s": generated / seconds,
        "total_tokens_per_s": (prompt_tokens + generated) / seconds,
        "requests_per_s": len(requests) / seconds,
        "max_memory_allocated_bytes": torch.cuda.max_memory_allocated(),
    }
    line = json.dumps(record)
    print(line)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
