#!/usr/bin/env python3
"""Charts and tables for models/kvasir-ref/MODEL_CARD.md from a training run's files.

  card.py RUN_DIR OUT_DIR [KVASIR_EVAL.json ...]

RUN_DIR holds train_log.jsonl and eval.json (what `ci/gpu.sh remote refmodel` brings back);
OUT_DIR receives loss.svg (the loss curve, matplotlib) and card-tables.md (the PyTorch
evaluation and, for each Kvasir evaluation JSON written by `kvasir-bench eval`, its table).
"""
import json
import os
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    run, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    log = [json.loads(l) for l in open(os.path.join(run, "train_log.jsonl")) if l.strip()]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.6))
    tokens = [r["tokens"] / 1e6 for r in log]
    ax.plot(tokens, [r["lm_loss"] for r in log], label="next-token loss (all tokens)")
    ax.plot(tokens, [r["answer_loss"] for r in log], label="next-token loss (answer tokens)")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("kvasir-ref training loss")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss.svg"))
    ev = json.load(open(os.path.join(run, "eval.json")))
    lines = ["### PyTorch (teacher-forced exact answer, held-out seeds and haystacks)", "",
             "| task | length | n | accuracy | separate documents |", "|---|---:|---:|---:|---:|"]
    for r in ev["eval"]["tasks"]:
        sep = r.get("accuracy_separate_documents")
        lines.append(f"| {r['task']} | {r['length']} | {r['n']} | {100 * r['accuracy']:.1f}% | "
                     f"{'' if sep is None else f'{100 * sep:.1f}%'} |")
    ppl = ev["eval"]["heldout_perplexity"]
    lines += ["", f"Held-out prose perplexity (PyTorch, windows of {ppl['window']}): {ppl['value']:.2f} over {ppl['tokens']} tokens.", ""]
    t = ev["train"]
    lines += [f"Training: {t['steps']} steps, {t['tokens'] / 1e6:.0f}M tokens, {t['seconds']:.0f} s "
              f"({t['tokens'] / t['seconds'] / 1e6:.2f}M tokens/s, data wait {t['data_wait_s']:.0f} s), "
              f"{t['params'] / 1e6:.2f}M parameters, device {ev['device_name']}, torch {ev['torch']}.", ""]
    for path in sys.argv[3:]:
        k = json.load(open(path))
        lines += [f"### Kvasir ({os.path.basename(path)})", ""]
        lines += [json.dumps({x: k[x] for x in k if x not in ("results", "cells")})[:400], ""]
    with open(os.path.join(out, "card-tables.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
