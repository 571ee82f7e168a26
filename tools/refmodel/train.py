#!/usr/bin/env python3
"""Trains Kvasir's reference model: a ~4.6M-parameter Llama that really retrieves at 8K tokens.

Everything the model sees comes from two places: the prose corpus (tools/refmodel/corpus.py)
and the project's one task generator (`kvasir-bench tasks`, Java), which this script runs as a
subprocess and reads as a JSONL stream, so training, Kvasir and transformers see the very same
prompts. Run on the H200 through `ci/gpu.sh remote refmodel`; `--device cpu --preset smoke`
runs the whole path at toy size on any machine.

Steps: (1) byte-level BPE tokenizer (digits split one per token) trained on the training prose
plus a sample of task text; (2) packed rows of `--seq` tokens, each sample its own segment
(positions restart at 0, attention never crosses segments; flex_attention document masks),
docqa samples half of the time with block attention (each document sees only itself, the
question sees everything), so span reuse has a model that tolerates it; (3) AdamW, warm-up
then cosine, bf16 autocast, loss = next-token loss over all tokens + the same loss over the
answer tokens alone; (4) PyTorch checks: teacher-forced exact-answer accuracy per task and
length on held-out seeds and held-out haystacks (separate vs joint documents for docqa),
held-out prose perplexity, and logits against transformers' LlamaForCausalLM loading the saved
files; (5) the Hugging Face directory: config.json, model.safetensors (bf16), tokenizer.json,
tokenizer_config.json (chat template), generation_config.json, plus train_log.jsonl / eval.json.

Seeds: training streams use generator seeds from 2_000_000_000 up, evaluation seeds 1..N (the
ranges never meet) and held-out haystack text; torch and the packer are seeded by --seed.
"""
import argparse
import json
import math
import os
import queue
import random
import subprocess
import sys
import threading
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SPECIALS = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
EOT, USER, ASSISTANT, SYSTEM, END = range(5)
CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + "
                 "'<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
TRAIN_SEED_BASE = 2_000_000_000
TOKENIZER_SEED_BASE = 1_500_000_000
# Weights are per record; arithmetic records are short (~120 tokens), so they are over half of the
# records but a few percent of the tokens, which the haystack tasks dominate.
MIX = ("passkey=0.09,niah_single=0.06,niah_multikey=0.12,niah_multivalue=0.04,kv_retrieval=0.04,"
       "variable_tracking=0.04,docqa=0.06,arithmetic=0.55")

PRESETS = {
    # The shipped model: 4 query heads of 64 (the CUDA prefill kernel's head size), GQA 2:1.
    "ref": dict(vocab=4096, hidden=256, layers=6, heads=4, kv_heads=2, head_dim=64, ffn=512, seq=8192,
                batch=8, steps=5000, warmup=200, lr=3e-3, rope_theta=50000.0),
    # The planned successor (MODEL_CARD.md, "Known limits"): twice the query heads for the key match
    # that multi-key retrieval needs, FFN trimmed to stay within 10 MB (4.93M parameters).
    "ref-8h": dict(vocab=4096, hidden=256, layers=6, heads=8, kv_heads=2, head_dim=64, ffn=416, seq=8192,
                   batch=8, steps=5000, warmup=200, lr=3e-3, rope_theta=50000.0),
    # Pipeline check at toy size (CPU or GPU, a minute).
    "smoke": dict(vocab=1024, hidden=64, layers=2, heads=2, kv_heads=1, head_dim=32, ffn=128, seq=1024,
                  batch=2, steps=20, warmup=5, lr=3e-3, rope_theta=50000.0),
}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def render(prompt):
    """The chat template applied to one user message with the generation prompt."""
    return "<|user|>\n" + prompt + "<|end|>\n<|assistant|>\n"


# ----------------------------------------------------------------------------------- tokenizer

def train_tokenizer(corpus_dir, task_texts, vocab, out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    # Digits one per token (arithmetic and retrieval copy digit by digit), then GPT-2 byte level.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

    def texts():
        with open(os.path.join(corpus_dir, "train.txt")) as f:
            for line in f:
                yield line
        yield from task_texts

    tok.train_from_iterator(texts(), trainer)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    added = {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, s in enumerate(SPECIALS)}
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False, "add_eos_token": False,
           "bos_token": None, "eos_token": "<|end|>", "pad_token": "<|endoftext|>", "unk_token": None,
           "model_max_length": 8192, "clean_up_tokenization_spaces": False,
           "added_tokens_decoder": added, "chat_template": CHAT_TEMPLATE}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return tok


# ---------------------------------------------------------------------------------------- data

class Generator:
    """`kvasir-bench tasks` as a subprocess; yields parsed JSON records."""

    def __init__(self, bench, args):
        self.cmd = bench + ["tasks"] + args
        log("generator:", " ".join(self.cmd))
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=sys.stderr, bufsize=1 << 20)

    def records(self):
        for line in self.proc.stdout:
            yield json.loads(line)
        rc = self.proc.wait()
        if rc != 0:
            raise RuntimeError(f"generator exited with {rc}: {' '.join(self.cmd)}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def encode_records(tok, recs, with_answer=True):
    """Token ids, answer mask and block ids of each record rendered through the chat template.

    The whole rendered string is encoded at once (as Kvasir and transformers do); char offsets
    map each token to its part (block) and to the answer span."""
    texts, spans = [], []
    for r in recs:
        head = render(r["prompt"])
        text = head + r["answer"] + "<|end|>" if with_answer else head
        texts.append(text)
        spans.append(len(head))
    encs = tok.encode_batch(texts, add_special_tokens=False)
    out = []
    for r, e, ans_start in zip(recs, encs, spans):
        ids = np.asarray(e.ids, dtype=np.int32)
        starts = np.asarray([o[0] for o in e.offsets], dtype=np.int64)
        mono = _monotone(starts)
        answer = np.zeros(len(ids), dtype=bool)
        if with_answer:
            answer[int(np.searchsorted(mono, ans_start, side="left")):] = True
        block = np.zeros(len(ids), dtype=np.int16)
        parts = r.get("parts")
        if parts:
            pos = len("<|user|>\n")
            for p in parts:
                end = pos + len(p["text"])
                if p["block"]:
                    lo = int(np.searchsorted(mono, pos, side="left"))
                    hi = int(np.searchsorted(mono, end, side="left"))
                    block[lo:hi] = p["block"]
                pos = end
        out.append((ids, answer, block))
    return out


def _monotone(starts):
    """Token start offsets made non-decreasing (a running maximum), so searchsorted works on
    them even if a token reports an offset of 0."""
    return np.maximum.accumulate(starts)


class Packer:
    """Packs samples into rows of `seq` tokens on a background thread.

    Each row: tokens, targets (-100 where no loss), answer mask, positions (restart per segment),
    segment ids (0 = padding) and block ids. A sample that does not fit the rest of a row closes
    it with a prose window; a fraction of rows are prose alone."""

    def __init__(self, tok, gen, prose_ids, seq, batch, seed, block_prob=0.5, prose_rows=0.1, depth=6):
        self.tok, self.gen, self.prose, self.seq, self.batch = tok, gen, prose_ids, seq, batch
        self.rng = random.Random(seed)
        self.block_prob, self.prose_rows = block_prob, prose_rows
        self.q = queue.Queue(maxsize=depth)
        self.samples = 0
        self.tokens_by_task = {}
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample_stream(self):
        it = self.gen.records()
        while True:
            chunk = []
            for r in it:
                chunk.append(r)
                if len(chunk) == 256:
                    break
            if not chunk:
                return
            for r, enc in zip(chunk, encode_records(self.tok, chunk)):
                ids, answer, block = enc
                if r["task"] == "docqa" and self.rng.random() >= self.block_prob:
                    block = np.zeros_like(block)
                self.samples += 1
                self.tokens_by_task[r["task"]] = self.tokens_by_task.get(r["task"], 0) + len(ids)
                yield ids, answer, block

    def _prose_window(self, n):
        start = self.rng.randrange(0, len(self.prose) - n)
        return self.prose[start:start + n]

    def _run(self):
        try:
            stream = self._sample_stream()
            pending = None
            while True:
                rows = []
                for _ in range(self.batch):
                    segs, pending = self._row(stream, pending)
                    rows.append(segs)
                self.q.put(self._collate(rows))
        except Exception as e:  # surfaced by next()
            self.error = e
            self.q.put(None)

    def _row(self, stream, pending):
        seq = self.seq
        segs = []
        used = 0
        if self.rng.random() < self.prose_rows:
            n = self.rng.choice([seq, seq // 2, seq // 4])
            while used + n <= seq:
                w = self._prose_window(n)
                segs.append((w, np.zeros(n, bool), np.zeros(n, np.int16)))
                used += n
            return segs, pending
        while True:
            s = pending if pending is not None else next(stream)
            pending = None
            if len(s[0]) > seq:
                continue  # longer than a row: never happens with lengths below seq
            if used + len(s[0]) > seq:
                rest = seq - used
                if rest >= 64:
                    w = self._prose_window(rest)
                    segs.append((w, np.zeros(rest, bool), np.zeros(rest, np.int16)))
                return segs, s
            segs.append(s)
            used += len(s[0])

    def _collate(self, rows):
        B, N = len(rows), self.seq
        tokens = np.full((B, N), EOT, np.int64)
        targets = np.full((B, N), -100, np.int64)
        answer = np.zeros((B, N), bool)
        pos = np.zeros((B, N), np.int64)
        doc = np.zeros((B, N), np.int32)
        blk = np.zeros((B, N), np.int32)
        for b, segs in enumerate(rows):
            at = 0
            for k, (ids, ans, block) in enumerate(segs):
                n = len(ids)
                tokens[b, at:at + n] = ids
                targets[b, at:at + n - 1] = ids[1:]
                answer[b, at:at + n - 1] = ans[1:]  # position t predicts token t+1
                pos[b, at:at + n] = np.arange(n)
                doc[b, at:at + n] = k + 1
                blk[b, at:at + n] = block
                at += n
            doc[b, at:] = len(segs) + 1  # padding: a segment of its own, no loss
        t = lambda a: torch.from_numpy(a).pin_memory() if torch.cuda.is_available() else torch.from_numpy(a)
        return dict(tokens=t(tokens), targets=t(targets), answer=t(answer), pos=t(pos), doc=t(doc), blk=t(blk))

    def next(self):
        item = self.q.get()
        if item is None:
            raise RuntimeError(f"data pipeline failed: {self.error!r}") from self.error
        return item


# --------------------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight.to(x.dtype)


def rope_tables(head_dim, theta, max_pos, device):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float64) / head_dim))
    f = torch.outer(torch.arange(max_pos, device=device, dtype=torch.float64), inv)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos().float(), emb.sin().float()


def apply_rope(x, cos, sin):
    # Hugging Face Llama convention: rotate the two halves of each head.
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return (x.float() * cos + rot.float() * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.kv, self.d = c["heads"], c["kv_heads"], c["head_dim"]
        self.q_proj = nn.Linear(c["hidden"], self.h * self.d, bias=False)
        self.k_proj = nn.Linear(c["hidden"], self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(c["hidden"], self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, c["hidden"], bias=False)

    def forward(self, x, cos, sin, attend):
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, self.h, self.d).transpose(1, 2)
        k = self.k_proj(x).view(B, N, self.kv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(B, N, self.kv, self.d).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        o = attend(q, k, v)
        return self.o_proj(o.transpose(1, 2).reshape(B, N, self.h * self.d))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden"], c["ffn"], bias=False)
        self.up_proj = nn.Linear(c["hidden"], c["ffn"], bias=False)
        self.down_proj = nn.Linear(c["ffn"], c["hidden"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, attend):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attend)
        return x + self.mlp(self.post_attention_layernorm(x))


class RefModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["hidden"])
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["layers"]) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def hidden(self, tokens, pos, attend, cos_t, sin_t):
        cos = cos_t[pos].unsqueeze(1)
        sin = sin_t[pos].unsqueeze(1)
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, attend)
        return self.norm(x)

    def logits(self, h):
        return h @ self.embed_tokens.weight.t()  # tied embeddings


def hf_state_dict(model):
    sd = {}
    for k, v in model.state_dict().items():
        name = "model." + k
        sd[name] = v.detach().to(torch.bfloat16).contiguous().cpu()
    return sd


def load_weights(model, model_dir):
    """Loads a saved directory's bf16 safetensors into a RefModel (fp32 master weights)."""
    from safetensors.torch import load_file
    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    model.load_state_dict({k[len("model."):]: v.float() for k, v in sd.items()})
    return model


def hf_config(c):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c["vocab"],
            "hidden_size": c["hidden"], "intermediate_size": c["ffn"], "num_hidden_layers": c["layers"],
            "num_attention_heads": c["heads"], "num_key_value_heads": c["kv_heads"], "head_dim": c["head_dim"],
            "max_position_embeddings": c["seq"], "rms_norm_eps": 1e-5, "rope_theta": c["rope_theta"],
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": True,
            "bos_token_id": None, "eos_token_id": [END, EOT], "pad_token_id": EOT, "torch_dtype": "bfloat16",
            "initializer_range": 0.02}


# -------------------------------------------------------------------------------------- attend

def make_masker(device, B, N, use_flex):
    """Returns (set_masks(doc, blk) -> mask, attend_with(mask) -> attend(q, k, v)): attention
    within a segment, causal, and for block ids > 0 only within the block (block 0 sees
    everything before it in its segment)."""
    if use_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        doc_buf = torch.zeros(B, N, dtype=torch.int32, device=device)
        blk_buf = torch.zeros(B, N, dtype=torch.int32, device=device)
        make_mask = torch.compile(create_block_mask)

        def mask_mod(b, h, q, kv):
            same = doc_buf[b, q] == doc_buf[b, kv]
            blocked = (blk_buf[b, q] == 0) | (blk_buf[b, q] == blk_buf[b, kv])
            return (q >= kv) & same & blocked

        def set_masks(doc, blk):
            doc_buf.copy_(doc, non_blocking=True)
            blk_buf.copy_(blk, non_blocking=True)
            return make_mask(mask_mod, B, None, N, N, device=device)

        def attend_with(bm):
            return lambda q, k, v: flex_attention(q, k, v, block_mask=bm, enable_gqa=True)
    else:
        def set_masks(doc, blk):
            doc, blk = doc.to(device), blk.to(device)
            i = torch.arange(N, device=device)
            m = (i[:, None] >= i[None, :]) & (doc[:, :, None] == doc[:, None, :])
            m &= (blk[:, :, None] == 0) | (blk[:, :, None] == blk[:, None, :])
            return m.unsqueeze(1)

        def attend_with(m):
            return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)
    return set_masks, attend_with


# ------------------------------------------------------------------------------------ training

def lr_at(step, c):
    if step < c["warmup"]:
        return c["lr"] * (step + 1) / c["warmup"]
    p = (step - c["warmup"]) / max(1, c["steps"] - c["warmup"])
    return c["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def train(a, c, tok, prose_ids, bench, device, out):
    torch.manual_seed(a.seed)
    model = RefModel(c).to(device)
    if a.init:
        load_weights(model, a.init)
        log(f"continuing from {a.init}")
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams / 1e6:.3f}M parameters, config {json.dumps(c)}")
    cos_t, sin_t = (t.to(device) for t in rope_tables(c["head_dim"], c["rope_theta"], c["seq"], device))
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["lr"], betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")
    B, N = c["batch"], c["seq"]
    use_flex = device.type == "cuda"
    set_masks, attend_with = make_masker(device, B, N, use_flex)

    def loss_fn(tokens, targets, answer, pos, mask):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = model.hidden(tokens, pos, attend_with(mask), cos_t, sin_t)
            logits = model.logits(h).float()
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), reduction="none",
                             ignore_index=-100)
        valid = (targets.view(-1) != -100).float()
        ans = answer.view(-1).float() * valid
        lm = (ce * valid).sum() / valid.sum().clamp(min=1)
        al = (ce * ans).sum() / ans.sum().clamp(min=1)
        return lm + al, lm, al

    step_fn = torch.compile(loss_fn) if use_flex else loss_fn
    gen = Generator(bench, ["--mix", a.mix, "--length-range", f"64:{N - 192}", "--count", "-1",
                            "--seed", str(a.stream_seed), "--haystack", os.path.join(a.corpus, "train.txt"),
                            "--tokenizer", out, "--threads", str(a.gen_threads)])
    packer = Packer(tok, gen, prose_ids, N, B, a.seed)
    logf = open(os.path.join(out, "train_log.jsonl"), "w")
    t0 = time.time()
    tokens_seen = 0
    wait = 0.0
    last = {}
    step = 0
    try:
        for step in range(c["steps"]):
            tw = time.time()
            batch = packer.next()
            wait += time.time() - tw
            for g in opt.param_groups:
                g["lr"] = lr_at(step, c)
            dev = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            mask = set_masks(dev["doc"], dev["blk"])
            loss, lm, al = step_fn(dev["tokens"], dev["targets"], dev["answer"], dev["pos"], mask)
            lm, al = lm.detach(), al.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tokens_seen += int((batch["targets"] != -100).sum())
            if step % 25 == 0 or step == c["steps"] - 1:
                el = time.time() - t0
                last = dict(step=step, tokens=tokens_seen, loss=loss.item(), lm_loss=lm.item(), answer_loss=al.item(),
                            lr=lr_at(step, c), elapsed_s=round(el, 1), data_wait_s=round(wait, 1),
                            samples=packer.samples)
                logf.write(json.dumps(last) + "\n")
                logf.flush()
                if step % 250 == 0 or step == c["steps"] - 1:
                    log(f"step {step} loss {float(lm):.3f} answer {float(al):.3f} tok/s {tokens_seen / max(el, 1e-9):,.0f} "
                        f"data-wait {wait:.0f}s samples {packer.samples}")
            if a.max_minutes and time.time() - t0 > a.max_minutes * 60:
                log(f"stopping at step {step}: the --max-minutes budget is spent")
                break
    finally:
        gen.close()
        logf.close()
    summary = dict(params=nparams, steps=step + 1, tokens=tokens_seen, seconds=round(time.time() - t0, 1),
                   data_wait_s=round(wait, 1), final=last, tokens_by_task=packer.tokens_by_task)
    return model, summary, (cos_t, sin_t)


# ---------------------------------------------------------------------------------- evaluation

@torch.no_grad()
def exact_answer_accuracy(model, tables, encs, device, blocked):
    """Teacher-forced: correct iff every answer token (and the closing <|end|>) is the argmax
    given the ones before it, which is exactly when greedy decoding writes the expected answer.
    `encs` are encode_records' output for the records."""
    cos_t, sin_t = tables
    correct = 0
    for ids, answer, block in encs:
        n = len(ids)
        t = torch.from_numpy(ids.astype(np.int64)).to(device)[None]
        pos = torch.arange(n, device=device)[None]
        blk = torch.from_numpy(block.astype(np.int32)).to(device) if blocked else torch.zeros(n, dtype=torch.int32, device=device)
        i = torch.arange(n, device=device)
        m = (i[:, None] >= i[None, :]) & ((blk[:, None] == 0) | (blk[:, None] == blk[None, :]))
        attend = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m[None, None], enable_gqa=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = model.hidden(t, pos, attend, cos_t, sin_t)
            pred = model.logits(h).argmax(-1)[0]
        a_idx = np.nonzero(answer)[0]
        first = int(a_idx[0])
        ok = bool((pred[first - 1:n - 1] == t[0, first:n]).all())
        correct += ok
    return correct / max(1, len(encs))


@torch.no_grad()
def perplexity(model, tables, ids, seq, device):
    cos_t, sin_t = tables
    nll, count = 0.0, 0
    attend = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    for s in range(0, len(ids) - 1, seq):
        w = torch.from_numpy(ids[s:s + seq + 1].astype(np.int64)).to(device)[None]
        if w.shape[1] < 2:
            break
        x, y = w[:, :-1], w[:, 1:]
        pos = torch.arange(x.shape[1], device=device)[None]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model.logits(model.hidden(x, pos, attend, cos_t, sin_t)).float()
        nll += float(F.cross_entropy(logits[0], y[0], reduction="sum"))
        count += y.shape[1]
    return math.exp(nll / max(1, count)), count


def evaluate(a, c, model, tables, tok, bench, device, out):
    model.eval()
    held = os.path.join(a.corpus, "heldout.txt")
    grid = [("passkey", [2048, 4096, 8192]), ("niah_single", [4096]), ("niah_multikey", [4096, 8192]),
            ("niah_multivalue", [4096]), ("kv_retrieval", [2048]), ("variable_tracking", [4096]),
            ("arithmetic", [256]), ("docqa", [2048, 4096])]
    if a.preset == "smoke":
        grid = [("passkey", [512]), ("arithmetic", [256]), ("docqa", [900])]
    if a.eval_tasks:
        grid = [g for g in grid if g[0] in a.eval_tasks.split(",")]
    n = a.eval_count
    results = []
    for task, lengths in grid:
        for length in lengths:
            length = min(length, c["seq"])
            gen = Generator(bench, ["--task", task, "--length", str(length - 96), "--count", str(n), "--seed", "1",
                                    "--haystack", held, "--tokenizer", out, "--threads", str(a.gen_threads)])
            encs = encode_records(tok, list(gen.records()))
            row = dict(task=task, length=length, n=len(encs),
                       mean_tokens=round(float(np.mean([len(e[0]) for e in encs])), 1),
                       accuracy=exact_answer_accuracy(model, tables, encs, device, blocked=False))
            if task == "docqa":
                row["accuracy_separate_documents"] = exact_answer_accuracy(model, tables, encs, device, blocked=True)
            log("eval", json.dumps(row))
            results.append(row)
    with open(held) as f:
        text = f.read()
    ids = np.asarray(tok.encode(text, add_special_tokens=False).ids, dtype=np.int32)
    ppl, count = perplexity(model, tables, ids[:200_000], min(1024, c["seq"]), device)
    log(f"held-out prose perplexity {ppl:.2f} over {count} tokens")
    return dict(tasks=results, heldout_perplexity=dict(value=ppl, tokens=count, window=min(1024, c["seq"])),
                eval_seeds="1..%d" % n, note="PyTorch, teacher-forced exact answer (== greedy writes the expected answer)")


@torch.no_grad()
def check_transformers(out, model, tables, tok, device):
    """Loads the saved directory with transformers and compares logits with this script's model."""
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        return dict(skipped="transformers not installed")
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 alone moves fp32 logits by ~5e-4
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).to(device).eval()
    ids = tok.encode(render("Compute 12 + 345 - 67.") + "First,", add_special_tokens=False).ids
    t = torch.tensor([ids], device=device)
    ref = hf(t).logits[0].float()
    mine = RefModel(model.c).to(device).float()
    mine.load_state_dict({k[len("model."):]: v.float() for k, v in hf_state_dict(model).items()})
    attend = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    cos_t, sin_t = tables
    got = mine.logits(mine.hidden(t, torch.arange(len(ids), device=device)[None], attend, cos_t, sin_t)).float()[0]
    err = float((got - ref).abs().max() / ref.abs().max())
    torch.backends.cuda.matmul.allow_tf32 = tf32
    log(f"transformers vs training model (fp32, same bf16 weights): max |diff| / max |logit| = {err:.2e}")
    if err > 1e-4:
        raise RuntimeError(f"the saved checkpoint does not load as the trained model in transformers (rel err {err:.2e})")
    return dict(max_rel_err=err, tokens=len(ids))


# ---------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, help="directory with train.txt and heldout.txt (corpus.py)")
    ap.add_argument("--bench", required=True, help="the kvasir-bench command, e.g. 'java -cp ... io.kvasir.bench.BenchMain'")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="ref", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max-minutes", type=float, default=0.0)
    ap.add_argument("--gen-threads", type=int, default=max(2, (os.cpu_count() or 4) - 4))
    ap.add_argument("--eval-count", type=int, default=100)
    ap.add_argument("--eval-tasks", help="comma-separated tasks of the PyTorch evaluation grid (default: all)")
    ap.add_argument("--eval-only", action="store_true", help="with --init: evaluate that directory, no training")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--init", help="continue from this saved directory (its tokenizer and weights; the optimizer "
                                   "state is re-warmed); the config must match the preset")
    ap.add_argument("--tokenizer", help="reuse the tokenizer of this saved directory instead of training one "
                    "(a from-scratch run that must keep the shipped vocabulary)")
    ap.add_argument("--mix", default=MIX, help="task mixture of the training stream (kvasir-bench --mix syntax)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--stream-seed", type=int, default=TRAIN_SEED_BASE,
                    help="first generator seed of the training stream (a continuation uses a fresh range)")
    a = ap.parse_args()
    c = dict(PRESETS[a.preset])
    if a.steps:
        c["steps"] = a.steps
    if a.batch:
        c["batch"] = a.batch
    if a.lr:
        c["lr"] = a.lr
    if a.warmup is not None:
        c["warmup"] = a.warmup
    if a.stream_seed < TRAIN_SEED_BASE:
        ap.error(f"--stream-seed must be >= {TRAIN_SEED_BASE}: lower seeds are evaluation and tokenizer seeds")
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device(a.device)
    bench = a.bench.split()
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()

    if a.init and a.tokenizer:
        ap.error("--init already takes the tokenizer of its directory; drop --tokenizer")
    if a.init or a.tokenizer:
        import shutil
        from tokenizers import Tokenizer
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(a.init or a.tokenizer, name), os.path.join(a.out, name))
        tok = Tokenizer.from_file(os.path.join(a.out, "tokenizer.json"))
    if a.init:
        with open(os.path.join(a.init, "config.json")) as f:
            saved = json.load(f)
        if hf_config(c) != {**saved, "max_position_embeddings": c["seq"]}:
            sys.exit(f"--init {a.init}: its config.json does not match preset {a.preset}")
    elif not a.tokenizer:
        log("tokenizer: sampling task text")
        g = Generator(bench, ["--mix", MIX, "--length-range", "64:512", "--count", "3000", "--seed",
                              str(TOKENIZER_SEED_BASE), "--haystack", os.path.join(a.corpus, "train.txt"),
                              "--threads", str(a.gen_threads)])
        task_texts = [render(r["prompt"]) + r["answer"] + "<|end|>" for r in g.records()]
        tok = train_tokenizer(a.corpus, task_texts, c["vocab"], a.out)
    log(f"tokenizer: vocabulary {tok.get_vocab_size()} ({time.time() - t_start:.0f} s)")
    with open(os.path.join(a.corpus, "train.txt")) as f:
        paras = f.read().split("\n")
    encs = tok.encode_batch([p + "\n" for p in paras if p], add_special_tokens=False)
    prose_ids = np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in encs])
    log(f"prose: {len(prose_ids):,} training tokens")

    if a.eval_only:
        if not a.init:
            ap.error("--eval-only needs --init DIR")
        model = load_weights(RefModel(c).to(device), a.init)
        tables = tuple(t.to(device) for t in rope_tables(c["head_dim"], c["rope_theta"], c["seq"], device))
        summary = dict(eval_only=a.init)
    else:
        model, summary, tables = train(a, c, tok, prose_ids, bench, device, a.out)
        log(f"trained: {json.dumps(summary)}")

    from safetensors.torch import save_file
    save_file(hf_state_dict(model), os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(hf_config(c), f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": None, "eos_token_id": [END, EOT], "pad_token_id": EOT, "do_sample": False}, f, indent=2)

    report = dict(train=summary, config=c, seed=a.seed, preset=a.preset, device=str(device),
                  device_name=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  torch=torch.__version__, mix=a.mix, init=a.init, stream_seed=a.stream_seed)
    report["transformers_check"] = check_transformers(a.out, model, tables, tok, device)
    report["eval"] = evaluate(a, c, model, tables, tok, bench, device, a.out)
    report["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(a.out, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    log(f"done in {report['total_seconds']} s")


if __name__ == "__main__":
    main()
