#!/usr/bin/env python3
"""Holds Kvasir's Java double-precision reference forward (tests-java,
io.kvasir.model.reference.ReferenceModel) to Hugging Face transformers, on the tiny random-weight
checkpoints that io.kvasir.model.TinyCheckpoints writes. Needs torch + transformers (the GPU
machine has them; no GPU is used).

  here:   mvn -B -q -pl tests-java -am verify -Dtest=ParityExportTest \
              -Dsurefire.failIfNoSpecifiedTests=false -Dkvasir.parity.out=$PWD/.parity
  there:  python3 tools/peers/reference_parity.py .parity

Per case it loads the directory with AutoModelForCausalLM in fp32 (eager attention), and checks
 - loading reports no missing, unexpected or mismatched tensors (the files are what
   save_pretrained would write);
 - max |logits_hf - logits_ref| / std(logits_ref) < 1e-4 over 24 positions (transformers runs in
   fp32 with fp32 RoPE tables; the reference is double, so this bounds fp32 error, not a bf16 one);
 - 16 greedy tokens identical, up to the first step whose reference top-2 margin is below 1e-4.
Exits non-zero on any failure.
"""
import json
import pathlib
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

root = pathlib.Path(sys.argv[1])
print("transformers", transformers.__version__, "torch", torch.__version__)
failed = 0
for case in json.loads((root / "cases.json").read_text()):
    name = case["name"]
    model, info = AutoModelForCausalLM.from_pretrained(root / name, dtype=torch.float32,
                                                       attn_implementation="eager", output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    with torch.no_grad():
        hf = model(torch.tensor([case["tokens"]])).logits[0].double().numpy()
    ref = np.fromfile(root / f"{name}.logits.f64", dtype="<f8").reshape(hf.shape)
    rel = float(np.abs(hf - ref).max() / ref.std())
    prompt = torch.tensor([case["greedy_prompt"]])
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=len(case["greedy"]), do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    gen = out[0, prompt.shape[1]:].tolist()
    first_diff = next((i for i, (a, b) in enumerate(zip(gen, case["greedy"])) if a != b), None)
    greedy_ok = first_diff is None or case["margins"][first_diff] < 1e-4
    ok = rel < 1e-4 and greedy_ok and not problems
    failed += not ok
    detail = "identical" if first_diff is None else f"first differs at {first_diff} (margin {case['margins'][first_diff]:.2e})"
    print(f"{'OK  ' if ok else 'FAIL'} {name}: max|diff|/std {rel:.2e} (logit std {ref.std():.3f}); greedy {detail}"
          + (f"; loading: {problems}" if problems else ""))
print(f"{len(json.loads((root / 'cases.json').read_text())) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
