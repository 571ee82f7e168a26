#!/usr/bin/env python3
"""torch SDPA decode on contiguous KV, the peer of kvasir_bench_paged_decode (issue 5).

torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True) with
q [b, 32, 1, 128] and k, v [b, 8, ctx, 128] (bf16, contiguous), batch x context in
{1, 8, 32, 128} x {1K, 8K, 32K, 128K}, skipping shapes whose K/V exceed --max-kv-gb.
Timed with CUDA events around batches of back-to-back calls (about 1 ms each) after a
warm-up; the figure is the median per-call time. KV bytes = 2 x b x 8 x ctx x 128 x 2.
Prints one JSON line per shape and writes them all to --json.

  python3 tools/peers/sdpa_decode_bench.py --json sdpa_decode.json
  python3 tools/peers/sdpa_decode_bench.py --device cpu --batch 1 --ctx 64 --reps 3   # smoke test
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HQ, HKV, D = 32, 8, 128


def timer(device):
    """Returns a function timing `calls` back-to-back calls of fn, in ms per call."""
    if device == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run(fn, calls):
            start.record()
            for _ in range(calls):
                fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) / calls
    else:
        def run(fn, calls):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            return (time.perf_counter() - t0) * 1e3 / calls
    return run


def bench_shape(batch, ctx, args, run):
    dev, dtype = args.device, torch.bfloat16
    gen = torch.Generator(device=dev).manual_seed(batch * 1000003 + ctx)
    q = torch.rand(batch, HQ, 1, D, device=dev, dtype=dtype, generator=gen).mul_(2).sub_(1)
    k = torch.rand(batch, HKV, ctx, D, device=dev, dtype=dtype, generator=gen).mul_(2).sub_(1)
    v = torch.rand(batch, HKV, ctx, D, device=dev, dtype=dtype, generator=gen).mul_(2).sub_(1)
    scale = 1.0 / math.sqrt(D)

    def fn():
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)

    out = fn()  # warm-up (kernel selection)
    assert out.shape == (batch, HQ, 1, D), out.shape
    for _ in range(args.warmup):
        fn()
    single = run(fn, 1)
    calls = max(1, min(100, math.ceil(1.0 / max(single, 1e-3))))
    samples = [run(fn, calls) for _ in range(args.reps)]
    median = statistics.median(samples)
    kv_bytes = 2 * batch * HKV * ctx * D * 2
    backend = None
    if dev == "cuda":
        # Which SDPA backend ran is not exposed; record what is enabled for the record.
        backend = {"flash": torch.backends.cuda.flash_sdp_enabled(),
                   "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                   "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                   "math": torch.backends.cuda.math_sdp_enabled()}
    del q, k, v, out
    return {"op": "torch_sdpa_decode", "torch": torch.__version__, "device": device_name(dev), "dtype": "bf16",
            "batch": batch, "ctx": ctx, "hq": HQ, "hkv": HKV, "d": D, "enable_gqa": True,
            "shape_q": [batch, HQ, 1, D], "shape_kv": [batch, HKV, ctx, D], "kv_bytes": kv_bytes,
            "median_ms": median, "min_ms": min(samples), "max_ms": max(samples), "calls_per_sample": calls,
            "samples": len(samples), "kv_bytes_per_s": kv_bytes / (median * 1e-3), "sdpa_backends_enabled": backend}


def device_name(dev):
    return torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    p.add_argument("--batch", type=int, action="append", help="repeatable; default 1 8 32 128")
    p.add_argument("--ctx", type=int, action="append", help="repeatable; default 1024 8192 32768 131072")
    p.add_argument("--reps", type=int, default=30, help="timed samples per shape (median reported)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-kv-gb", type=float, default=60.0)
    p.add_argument("--json", help="write the JSON lines here too")
    args = p.parse_args(argv)
    batches = args.batch or [1, 8, 32, 128]
    contexts = args.ctx or [1024, 8192, 32768, 131072]
    run = timer(args.device)
    lines = []
    for batch in batches:
        for ctx in contexts:
            kv_bytes = 2 * batch * HKV * ctx * D * 2
            if kv_bytes / 1e9 > args.max_kv_gb:
                print(f"skip batch {batch} ctx {ctx}: {kv_bytes / 1e9:.1f} GB of KV > --max-kv-gb", file=sys.stderr)
                continue
            try:
                rec = bench_shape(batch, ctx, args, run)
            except torch.OutOfMemoryError as e:  # recorded, not fatal: the next shape may fit
                rec = {"op": "torch_sdpa_decode", "batch": batch, "ctx": ctx, "error": f"out of memory: {e}"}
            if args.device == "cuda":
                torch.cuda.empty_cache()
            line = json.dumps(rec)
            print(line, flush=True)
            lines.append(line)
    if args.json:
        with open(args.json, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
