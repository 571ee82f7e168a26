#!/usr/bin/env python3
"""The loss-curve chart of models/kvasir-ref/MODEL_CARD.md from the training phases' logs.

  card.py OUT.svg PHASE1/train_log.jsonl [PHASE2/train_log.jsonl ...]

Each log is what `ci/gpu.sh remote refmodel` brings back in refmodel.tar; phases continue one
another (--init), so their token counts are laid end to end and each phase is marked.
Needs matplotlib (pip install matplotlib).
"""
import json
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    offset = 0.0
    for i, path in enumerate(sys.argv[2:]):
        log = [json.loads(l) for l in open(path) if l.strip()]
        tokens = [offset + r["tokens"] / 1e6 for r in log]
        ax.plot(tokens, [r["lm_loss"] for r in log], color="tab:blue", lw=1,
                label="all tokens" if i == 0 else None)
        ax.plot(tokens, [r["answer_loss"] for r in log], color="tab:orange", lw=1,
                label="answer tokens" if i == 0 else None)
        if i:
            ax.axvline(offset, color="grey", ls="--", lw=0.8)
        ax.text(offset + 5, 6, f"phase {i + 1}", fontsize=8, color="grey")
        offset = tokens[-1]
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("next-token cross-entropy (nats)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("kvasir-ref training loss (logged every 25 steps)")
    fig.tight_layout()
    fig.savefig(sys.argv[1], metadata={"Date": None})
    print("wrote", sys.argv[1])


if __name__ == "__main__":
    main()
