#!/usr/bin/env python3
"""torch SDPA causal prefill (flash backend) at kvasir_bench_paged_prefill's shapes, the peer
its TFLOP/s are judged against (goal: paged prefill >= 0.8x this at 8K and 32K).

Shapes: batch B, Hq query heads, Hkv KV heads, head dim D, bf16, causal, q_len = kv_len = S.
FLOPs = 4 * Hq * D * sum over queries of the keys each attends = 4 * Hq * D * B * S (S + 1) / 2,
the same count kvasir_bench_paged_prefill uses. Timing: CUDA events around each call, warm-up
first, median (and p10/p90) of --reps calls. One JSON object per shape on stdout (one line each)
and, with --json FILE, in FILE.

GQA: the flash backend is asked for enable_gqa=True first; if it refuses, K and V are expanded
to Hq heads with repeat_interleave outside the timed region and the record says
"gqa": "expanded" (the kernel then reads Hq/Hkv times more K/V than a GQA kernel would; the
arithmetic is the same).

  python3 tools/peers/sdpa_prefill_bench.py [--seq 8192,32768] [--batch 1] [--hq 32] [--hkv 8]
                                            [--d 128] [--reps 20] [--warmup 3] [--json FILE]
  # smoke test without a GPU (math backend, tiny shapes, fp32 on the CPU):
  python3 tools/peers/sdpa_prefill_bench.py --device cpu --seq 64,128 --hq 4 --hkv 2 --d 32 --reps 3
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def percentile(sorted_ms, f):
    return sorted_ms[min(len(sorted_ms) - 1, int(f * (len(sorted_ms) - 1) + 0.5))]


def time_calls(fn, reps, warmup, cuda):
    for _ in range(warmup):
        fn()
    ms = []
    if cuda:
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        for _ in range(reps):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            ms.append(start.elapsed_time(stop))
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return statistics.median(ms), percentile(ms, 0.1), percentile(ms, 0.9)


def bench_one(args, seq, device, backend, dtype):
    cuda = device == "cuda"
    gen = torch.Generator(device=device).manual_seed(seq)
    shape_q = (args.batch, args.hq, seq, args.d)
    shape_kv = (args.batch, args.hkv, seq, args.d)
    q = torch.rand(shape_q, device=device, dtype=dtype, generator=gen) * 2 - 1
    k = torch.rand(shape_kv, device=device, dtype=dtype, generator=gen) * 2 - 1
    v = torch.rand(shape_kv, device=device, dtype=dtype, generator=gen) * 2 - 1
    gqa = "native"
    k_use, v_use = k, v

    def call_gqa():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    def call_expanded():
        return F.scaled_dot_product_attention(q, k_use, v_use, is_causal=True)

    fn = call_gqa
    with sdpa_kernel(backend):
        if args.hq != args.hkv:
            try:
                call_gqa()
            except RuntimeError as e:  # the backend refused enable_gqa
                gqa = "expanded"
                refusal = str(e).splitlines()[0][:200]
                rep = args.hq // args.hkv
                k_use = k.repeat_interleave(rep, dim=1)  # outside the timed region
                v_use = v.repeat_interleave(rep, dim=1)
                fn = call_expanded
                print(f"note: enable_gqa refused ({refusal}); K/V expanded to {args.hq} heads", file=sys.stderr)
        median, p10, p90 = time_calls(fn, args.reps, args.warmup, cuda)
    flops = 4.0 * args.hq * args.d * args.batch * seq * (seq + 1) / 2.0
    return {
        "op": "torch_sdpa_prefill",
        "backend": backend.name.lower(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype).replace("torch.", ""),
        "batch": args.batch, "q_len": seq, "kv_len": seq, "hq": args.hq, "hkv": args.hkv, "d": args.d,
        "causal": True, "gqa": gqa, "reps": args.reps,
        "median_ms": median, "p10_ms": p10, "p90_ms": p90,
        "flops": flops, "tflops": flops / (median * 1e-3) / 1e12,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", default="8192,32768")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--hq", type=int, default=32)
    ap.add_argument("--hkv", type=int, default=8)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.hq % args.hkv:
        ap.error("--hq must be a multiple of --hkv")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            ap.error("no CUDA device (use --device cpu for the math-backend smoke test)")
        backend, dtype = SDPBackend.FLASH_ATTENTION, torch.bfloat16
    else:
        backend, dtype = SDPBackend.MATH, torch.float32
    records = []
    for seq in (int(s) for s in args.seq.split(",")):
        rec = bench_one(args, seq, args.device, backend, dtype)
        print(json.dumps(rec), flush=True)
        records.append(rec)
    if args.json:
        with open(args.json, "w") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
