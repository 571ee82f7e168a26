#!/usr/bin/env python3
"""Builds the reference model's prose corpus from Debian packages (public domain or permissive).

Sources (their licences are listed in models/kvasir-ref/MODEL_CARD.md):
  bible-kjv-text  King James Version, public domain (read through the `bible` program of bible-kjv)
  dict-devil      Ambrose Bierce, The Devil's Dictionary, public domain
  dict-jargon     The Jargon File 4.4.7, public domain
  dict-wn         WordNet 3.0 glosses, WordNet licence (permissive, notice kept in the model card)

Output (one paragraph per line, ASCII): OUT/train.txt and OUT/heldout.txt. A paragraph goes to
the held-out part when the SHA-1 of its text falls in the lowest 1/20 of the hash space, so the
split is stable and never depends on order; training never sees held-out text. heldout.txt is
shipped as models/kvasir-ref/heldout-prose.txt: the evaluation haystacks and perplexity text.

Usage: corpus.py OUT_DIR   (tools/refmodel/corpus.sh installs the packages)
"""
import argparse
import gzip
import hashlib
import os
import re
import subprocess
import sys
import unicodedata

DICTD = "/usr/share/dictd"
HELDOUT_DENOM = 20

_PUNCT = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ", "\u2013": "-",
          "\u2026": "...", "\u00a0": " ", "\u00b7": ""}


def ascii_text(s):
    for k, v in _PUNCT.items():
        s = s.replace(k, v)
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")
    s = s.replace("{", "").replace("}", "").replace("_", "")
    return re.sub(r"\s+", " ", s).strip()


def kjv():
    out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], check=True, capture_output=True, text=True).stdout
    chapter, verses = None, []
    for line in out.splitlines():
        m = re.match(r"^(\w+?)(\d+):(\d+) (.*)$", line)
        if not m:
            continue
        key = (m.group(1), m.group(2))
        if key != chapter and verses:
            yield " ".join(verses)
            verses = []
        chapter = key
        verses.append(m.group(4).strip())
        if len(verses) == 8:  # paragraphs of 8 verses: chapters run to 176 verses
            yield " ".join(verses)
            verses = []
    if verses:
        yield " ".join(verses)


def dict_paragraphs(name):
    text = gzip.open(os.path.join(DICTD, name + ".dict.dz"), "rt", encoding="utf-8", errors="replace").read()
    # Entries of the dictd header ("00-database-...") come first; skip to the first real entry.
    for block in re.split(r"\n\s*\n", text):
        if "00-database" in block or "dictfmt" in block or "http" in block:
            continue
        para = ascii_text(block)
        if len(para) >= 60 and len(para.split()) >= 8:
            yield para


def wordnet():
    text = gzip.open(os.path.join(DICTD, "wn.dict.dz"), "rt", encoding="utf-8", errors="replace").read()
    group = []
    for entry in re.split(r"\n(?=\S)", text):
        lines = entry.split("\n")
        head = lines[0].strip()
        if not re.fullmatch(r"[a-z]{3,}", head) or hashlib.sha1(head.encode()).digest()[0] >= 128:
            continue  # single plain words only, half of them: glosses are terse, keep them a minority
        body = ascii_text(" ".join(lines[1:]))
        body = re.sub(r"\[(syn|ant|also):[^\]]*\]", "", body)
        senses = [s.strip(" ;") for s in re.split(r"(?:\b(?:n|v|adj|adv)\s+)?\b\d+:\s", body) if s.strip(" ;")]
        senses = [s for s in senses if len(s) > 10 and not re.fullmatch(r"(n|v|adj|adv)", s)]
        if not senses:
            continue
        sentence = head.capitalize() + " means " + "; or ".join(senses[:2])
        sentence = re.sub(r"\s+", " ", sentence).strip()
        group.append(sentence.rstrip(".") + ".")
        if len(group) == 6:
            yield " ".join(group)
            group = []


def is_heldout(para):
    return int.from_bytes(hashlib.sha1(para.encode()).digest()[:4], "big") % HELDOUT_DENOM == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sources = [("kjv", kjv), ("devil", lambda: dict_paragraphs("devil")),
               ("jargon", lambda: dict_paragraphs("jargon")), ("wordnet", wordnet)]
    train, held, stats = [], [], []
    seen = set()
    for name, fn in sources:
        n = b = 0
        for para in fn():
            para = ascii_text(para)
            if para in seen:
                continue
            seen.add(para)
            (held if is_heldout(para) else train).append(para)
            n += 1
            b += len(para)
        stats.append((name, n, b))
    with open(os.path.join(a.out, "train.txt"), "w") as f:
        f.write("\n".join(train) + "\n")
    with open(os.path.join(a.out, "heldout.txt"), "w") as f:
        f.write("\n".join(held) + "\n")
    for name, n, b in stats:
        print(f"{name}: {n} paragraphs, {b / 1e6:.2f} MB", file=sys.stderr)
    print(f"train {len(train)} paragraphs {sum(map(len, train)) / 1e6:.2f} MB; heldout {len(held)} "
          f"paragraphs {sum(map(len, held)) / 1e6:.2f} MB",
          file=sys.stderr)


if __name__ == "__main__":
    main()
