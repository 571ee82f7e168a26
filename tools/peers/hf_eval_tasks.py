#!/usr/bin/env python3
"""transformers on the very prompts of a Kvasir eval (issue 6): reads task records (JSONL, as
`kvasir-bench eval --export-records FILE` or `kvasir-bench tasks --out FILE` writes them), renders
each prompt as Kvasir's eval does, generates greedily with transformers on the GPU, scores with a
port of TaskScorer, and writes a JSON record in the schema of `kvasir-bench eval --out`.

Mirrors io.kvasir.bench.Evaluator (java/kvasir-bench/src/main/java/io/kvasir/bench/Evaluator.java):
- the prompt is one user message rendered by the model's chat template with the generation prompt,
  tokenized without special tokens on top (the template supplies BOS): Engine.encodeChat;
- greedy, at most (answer tokens + 16) new tokens, answer tokens counted without special tokens
  (HfTokenCounter); generation stops at any id of generation_config.json's eos_token_id (what
  Kvasir's SpecialTokens reads first, and what generate uses);
- the text is the new tokens up to the first EOS, decoded with skip_special_tokens=True;
- cells are (task, length): a record's "eval_length" when eval exported it (the cell's total
  length), else its "length" (the prompt budget of `kvasir-bench tasks`).
Differences, by construction:
- Kvasir renders the template with its own Jinja engine (jinjava); a template that prints the
  date gets the date of each run;
- Kvasir detokenizes incrementally after the prompt, transformers decodes the new tokens alone:
  a sentencepiece tokenizer may differ in a leading space, which no scoring rule reads;
- batches are left-padded (--batch 1 avoids padding altogether); bf16 rounding differs from
  Kvasir's kernels, so near-ties can break the other way;
- mean_prefill_s is not measured (null).

  python3 tools/peers/hf_eval_tasks.py RECORDS.jsonl --model MODEL_DIR --out hf-eval.json [--batch 8]
  python3 tools/peers/hf_eval_tasks.py --self-test     # the scorer on the shared cases, no torch needed
"""
import argparse
import datetime
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SLACK_TOKENS = 8           # Evaluator.SLACK_TOKENS
EXTRA_ANSWER_TOKENS = 16   # Evaluator.EXTRA_ANSWER_TOKENS
MAX_FAILURES = 5           # Evaluator.MAX_FAILURES

# ---- TaskScorer, ported from java/kvasir-bench/src/main/java/io/kvasir/bench/tasks/TaskScorer.java
# (and CommonWordsTask.WORD). Keep the two in step: tools/peers/task_scorer_cases.json is run by
# both (TaskScorerTest.sharedCasesAgreeWithThePythonPort and --self-test).
END_MARKERS = ("<|end|>", "<|endoftext|>")
FINAL_ANSWER = re.compile(r"answer is (-?\d+)")  # Java's \d is ASCII; so is re.ASCII below
LETTERS = re.compile(r"[A-Za-z]+")
CWE_WORD = re.compile(r"(?:[bdfgklmnprstvz][aeiou]){3}")


def cut(output):
    end = len(output)
    for marker in END_MARKERS:
        at = output.find(marker)
        if at >= 0:
            end = min(end, at)
    return output[:end]


def is_word_char(c):
    return ("0" <= c <= "9") or ("A" <= c <= "Z") or ("a" <= c <= "z")


def contains_token(text, value):
    if not value:
        return False
    at = text.find(value)
    while at >= 0:
        after = at + len(value)
        if (at == 0 or not is_word_char(text[at - 1])) and (after == len(text) or not is_word_char(text[after])):
            return True
        at = text.find(value, at + 1)
    return False


def score(task, values, output):
    """(correct, partial) as TaskScorer.score."""
    text = cut(output or "")
    if task == "arithmetic":
        last = None
        for m in re.finditer(FINAL_ANSWER.pattern, text, re.ASCII):
            last = m.group(1)
        ok = last is not None and len(values) > 0 and last == values[0]
        return ok, 1.0 if ok else 0.0
    if not values:
        return False, 0.0
    if task == "cwe":
        named = {w.lower() for w in LETTERS.findall(text) if CWE_WORD.fullmatch(w.lower())}
        want = set(values)
        found = sum(1 for v in want if v in named)
        return named == want, found / len(want)
    found = sum(1 for v in values if contains_token(text, v))
    return found == len(values), found / len(values)


def self_test():
    with open(os.path.join(HERE, "task_scorer_cases.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    bad = 0
    for i, c in enumerate(cases):
        ok, partial = score(c["task"], c["values"], c["output"])
        if ok != c["correct"] or abs(partial - c["partial"]) > 1e-12:
            print(f"case {i} ({c['task']}, {c['output']!r}): got ({ok}, {partial}), want ({c['correct']}, {c['partial']})",
                  file=sys.stderr)
            bad += 1
    print(f"hf_eval_tasks scorer: {len(cases) - bad} of {len(cases)} cases agree with TaskScorer")
    return 1 if bad else 0


# ---- the run

def read_records(path):
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path} line {n}: not JSON ({e})")
            for field in ("id", "task", "length", "prompt", "answer", "values"):
                if field not in r:
                    sys.exit(f"{path} line {n}: not a task record (no {field!r})")
            records.append(r)
    if not records:
        sys.exit(f"{path}: no records")
    return records


def cells(records):
    out = {}
    for r in records:
        out.setdefault((r["task"], r.get("eval_length", r["length"])), []).append(r)
    return out


def chat_ids(tok, prompt):
    # Engine.encodeChat: the rendered text, tokenized with no special tokens added.
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def eos_ids(model_dir, model):
    path = os.path.join(model_dir, "generation_config.json")
    ids = None
    if os.path.exists(path):
        with open(path) as f:
            ids = json.load(f).get("eos_token_id")
    if ids is None:
        ids = model.generation_config.eos_token_id
    if ids is None:
        return []
    return ids if isinstance(ids, list) else [ids]


def generate(model, tok, batch, eos, pad_id):
    import torch
    longest = max(len(s["ids"]) for s in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, s in enumerate(batch):
        n = len(s["ids"])
        ids[row, longest - n:] = torch.tensor(s["ids"], dtype=torch.long)
        mask[row, longest - n:] = 1
    max_new = max(s["max_new"] for s in batch)
    with torch.no_grad():
        out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), do_sample=False,
                             max_new_tokens=max_new, eos_token_id=eos or None, pad_token_id=pad_id)
    texts = []
    for row, s in enumerate(batch):
        new = out[row, longest:].tolist()[:s["max_new"]]  # each sample's own budget, as Kvasir's maxTokens
        for k, t in enumerate(new):
            if t in eos:
                new = new[:k]
                break
        texts.append(tok.decode(new, skip_special_tokens=True))
    return texts


def run(args):
    import torch
    import transformers
    records = read_records(args.records)
    tok = transformers.AutoTokenizer.from_pretrained(args.model)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(args.device).eval()
    eos = eos_ids(args.model, model)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else 0)
    template_tokens = len(chat_ids(tok, ""))
    results = []
    max_context = 0
    for (task, length), recs in cells(records).items():
        start = time.time()
        samples = []
        for r in recs:
            ids = chat_ids(tok, r["prompt"])
            answer_tokens = len(tok(r["answer"], add_special_tokens=False)["input_ids"])
            samples.append({"r": r, "ids": ids, "answer_tokens": answer_tokens,
                            "max_new": answer_tokens + EXTRA_ANSWER_TOKENS})
            max_context = max(max_context, len(ids) + answer_tokens + EXTRA_ANSWER_TOKENS)
        correct, partial, failures = 0, 0.0, []
        for i in range(0, len(samples), args.batch):
            group = samples[i:i + args.batch]
            for s, got in zip(group, generate(model, tok, group, eos, pad_id)):
                ok, part = score(task, s["r"]["values"], got)
                correct += ok
                partial += part
                if not ok and len(failures) < MAX_FAILURES:
                    failures.append({"id": s["r"]["id"], "expected": s["r"]["answer"], "got": got})
            print(f"{task} at length {length}: {min(i + args.batch, len(samples))}/{len(samples)} done", file=sys.stderr)
        n = len(samples)
        results.append({
            "task": task, "length": length, "prompt_budget": recs[0]["length"],
            "max_total_tokens": max(len(s["ids"]) + s["answer_tokens"] + SLACK_TOKENS for s in samples),
            "count": n, "correct": correct, "accuracy": correct / n, "mean_partial": partial / n,
            "mean_prompt_tokens": sum(s["r"].get("prompt_tokens", 0) for s in samples) / n,
            "mean_chat_tokens": sum(len(s["ids"]) for s in samples) / n,
            "mean_prefill_s": None, "seconds": time.time() - start, "failures": failures})
    device = args.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    first = records[0]
    record = {
        "model": args.model, "device": device,
        "policy": f"transformers {transformers.__version__} (torch {torch.__version__}), full KV",
        "git_commit": os.environ.get("KVASIR_GIT_COMMIT") or None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "dtype": {"bf16": "BF16", "f32": "F32"}[args.dtype], "haystack": None, "seed": first.get("seed"),
        "depth": first.get("depth"), "batch": args.batch, "max_context": max_context,
        "template_tokens": template_tokens,
        "budget_rule": "records as given (" + os.path.basename(args.records) + "); generation: greedy, at most answer"
                       " tokens + " + str(EXTRA_ANSWER_TOKENS) + ", stop at generation_config eos_token_id",
        "results": results}
    if record["git_commit"] is None:
        del record["git_commit"]
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2)
    print("| task | length | n | accuracy |")
    print("|---|---:|---:|---:|")
    for c in results:
        print(f"| {c['task']} | {c['length']} | {c['count']} | {c['accuracy']:.3f} |")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records", nargs="?", help="task records (JSONL)")
    p.add_argument("--model", help="Hugging Face model directory (offline)")
    p.add_argument("--out", help="the JSON record to write")
    p.add_argument("--batch", type=int, default=8, help="samples per generate call (left-padded; default 8)")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--dtype", choices=("bf16", "f32"), default="bf16")
    p.add_argument("--self-test", action="store_true", help="run the scorer on the shared cases and exit")
    args = p.parse_args()
    if args.self_test:
        return self_test()
    if not (args.records and args.model and args.out):
        p.error("RECORDS, --model and --out are required (or --self-test)")
    if args.batch < 1:
        p.error("--batch must be >= 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
