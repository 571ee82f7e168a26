#!/usr/bin/env python3
"""Where multi-key retrieval goes wrong: which needle's value the model copies.

  probe_multikey.py MODEL_DIR RECORDS.jsonl     (niah_multikey records from `kvasir-bench tasks`)

For each record the model (this repository's PyTorch Llama, CPU or GPU) is teacher-forced up to
the value in "The special magic number for KEY is: " and then decodes the value greedily. The
output is classified as the asked needle's value, another needle's value (by its order in the
text and by whether its key shares the asked key's first word), or no needle's value. Prints a
table and writes nothing.
"""
import collections
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402  (the model definition and the chat rendering)

NEEDLE = re.compile(r"One of the special magic numbers for ([a-z]+-[a-z]+) is: (\d+)\.")


def load(model_dir, device):
    from tokenizers import Tokenizer
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    c = dict(vocab=cfg["vocab_size"], hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"],
             heads=cfg["num_attention_heads"], kv_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
             ffn=cfg["intermediate_size"], seq=cfg["max_position_embeddings"], rope_theta=cfg["rope_theta"])
    model = train.load_weights(train.RefModel(c).to(device), model_dir).eval()
    tables = tuple(t.to(device) for t in train.rope_tables(c["head_dim"], c["rope_theta"], c["seq"], device))
    return model, tables, Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))


@torch.no_grad()
def greedy_value(model, tables, ids, device, max_new=10):
    cos_t, sin_t = tables
    attend = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    out = []
    ids = list(ids)
    for _ in range(max_new):
        t = torch.tensor([ids], device=device)
        pos = torch.arange(len(ids), device=device)[None]
        nxt = int(model.logits(model.hidden(t, pos, attend, cos_t, sin_t))[0, -1].argmax())
        ids.append(nxt)
        out.append(nxt)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tables, tok = load(sys.argv[1], device)
    kinds = collections.Counter()
    for line in open(sys.argv[2]):
        r = json.loads(line)
        needles = NEEDLE.findall(r["prompt"])
        asked = r["answer"].split(" for ")[1].split(" is: ")[0]
        head = train.render(r["prompt"]) + f"The special magic number for {asked} is: "
        got = tok.decode(greedy_value(model, tables, tok.encode(head, add_special_tokens=False).ids, device))
        got = re.match(r"\s*(\d*)", got).group(1)
        order = [k for k, _ in needles].index(asked)
        if got == r["values"][0]:
            kinds[f"right (asked needle #{order + 1} of {len(needles)})"] += 1
            continue
        match = [i for i, (k, v) in enumerate(needles) if v == got]
        if match:
            i = match[0]
            shared = needles[i][0].split("-")[0] == asked.split("-")[0]
            rel = "before" if i < order else "after"
            kinds[f"wrong: copied needle #{i + 1} ({rel} the asked one{', same first word' if shared else ''})"] += 1
        else:
            kinds["wrong: no needle's value"] += 1
    total = sum(kinds.values())
    print(f"| outcome | n | share |\n|---|---:|---:|")
    for k, n in sorted(kinds.items()):
        print(f"| {k} | {n} | {100 * n / total:.0f}% |")


if __name__ == "__main__":
    main()
