#!/usr/bin/env python3
"""Golden outputs for the Swift LoRA parity tests (llm.c style): the book's GPTModel (chapter 4,
with separate W_query / W_key / W_value Linears) written out in PyTorch, made LoRA the way
appendix E does it — freeze every parameter, then replace every torch.nn.Linear (the output head
included) by Linear + alpha * (x @ A @ B) — on small random configs.

Run from the repository root in the project venv:

    /work/venv/bin/python tools/reference/lora_parity.py

Writes Tests/Fixtures/lora-parity/<case>.weights.safetensors (base parameters under the Hugging
Face names of Sources/GPT2/ParameterLayout.swift, adapters under the names of
Sources/GPT2/LoRA.swift: h.{i}.attn.c_attn.{q,k,v}, h.{i}.attn.c_proj, h.{i}.mlp.c_fc,
h.{i}.mlp.c_proj, out_head | lm_head, each .lora_A [in, r] and .lora_B [r, out]) and
<case>.golden.safetensors (inputs, logits, loss, the gradient of every adapter tensor, a 5-step
AdamW loss trajectory and two adapter tensors after it) for two cases:

  cls  chapter 6: classification head Linear(C, 2) with bias (frozen, adapted), last position.
  lm   chapter 7: language-model head Linear(C, V, bias=False) holding wte (as the book's
       load_weights_into_gpt assigns it; frozen, adapted), next-token targets with -100 entries.

B is drawn at random here instead of the book's zeros: with B = 0 the gradient of A is exactly 0
and the test could not catch a wrong dA. The book's initialisation itself (A kaiming-uniform with
a = sqrt(5) on [in, r], i.e. U(-1/sqrt(r), 1/sqrt(r)); B = 0) is checked by `init_check`, and the
trainable parameter count of gpt2-small with rank 16 and a 2-class head by `count_check`
(the book reports 2,666,528).
"""
import math
import os

import torch
from safetensors.torch import save_file

from _common import adamw_trajectory, config_json

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "lora-parity")
STEPS = 5
LR = 1e-3
WEIGHT_DECAY = 0.1


# ---- the book's model (chapter 4), written out ----------------------------------------------

class LayerNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.eps = 1e-5
        self.scale = torch.nn.Parameter(torch.ones(d))
        self.shift = torch.nn.Parameter(torch.zeros(d))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(torch.nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class Attention(torch.nn.Module):
    def __init__(self, d, heads, ctx, qkv_bias):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.W_query = torch.nn.Linear(d, d, bias=qkv_bias)
        self.W_key = torch.nn.Linear(d, d, bias=qkv_bias)
        self.W_value = torch.nn.Linear(d, d, bias=qkv_bias)
        self.out_proj = torch.nn.Linear(d, d)
        self.register_buffer("mask", torch.triu(torch.ones(ctx, ctx), diagonal=1))

    def forward(self, x):
        b, t, d = x.shape
        def split(z):
            return z.view(b, t, self.heads, self.hd).transpose(1, 2)
        q, k, v = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
        scores = q @ k.transpose(2, 3)
        scores.masked_fill_(self.mask.bool()[:t, :t], -torch.inf)
        weights = torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).contiguous().view(b, t, d))


class Block(torch.nn.Module):
    def __init__(self, d, heads, ctx, qkv_bias):
        super().__init__()
        self.att = Attention(d, heads, ctx, qkv_bias)
        self.ff = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), GELU(), torch.nn.Linear(4 * d, d))
        self.norm1, self.norm2 = LayerNorm(d), LayerNorm(d)

    def forward(self, x):
        x = x + self.att(self.norm1(x))
        return x + self.ff(self.norm2(x))


class GPTModel(torch.nn.Module):
    def __init__(self, vocab, ctx, d, heads, layers, qkv_bias=True):
        super().__init__()
        self.tok_emb = torch.nn.Embedding(vocab, d)
        self.pos_emb = torch.nn.Embedding(ctx, d)
        self.trf_blocks = torch.nn.Sequential(*[Block(d, heads, ctx, qkv_bias) for _ in range(layers)])
        self.final_norm = LayerNorm(d)
        self.out_head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.tok_emb(ids) + self.pos_emb(torch.arange(t))
        return self.out_head(self.final_norm(self.trf_blocks(x)))


# ---- appendix E ------------------------------------------------------------------------------

class LoRALayer(torch.nn.Module):
    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        self.A = torch.nn.Parameter(torch.empty(in_dim, rank))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(rank, out_dim))
        self.alpha = alpha

    def forward(self, x):
        return self.alpha * (x @ self.A @ self.B)


class LinearWithLoRA(torch.nn.Module):
    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    def forward(self, x):
        return self.linear(x) + self.lora(x)


def replace_linear_with_lora(module, rank, alpha):
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, LinearWithLoRA(child, rank, alpha))
        else:
            replace_linear_with_lora(child, rank, alpha)


def make_lora(model, rank, alpha):
    for p in model.parameters():
        p.requires_grad = False
    replace_linear_with_lora(model, rank, alpha)


# ---- names: the book's modules -> ParameterLayout / LoRALayout names ------------------------

def adapters(model, head_name):
    """(LoRA name, LoRALayer) in LoRALayout order."""
    out = []
    for i, blk in enumerate(model.trf_blocks):
        p = f"h.{i}."
        out += [(p + "attn.c_attn.q", blk.att.W_query.lora), (p + "attn.c_attn.k", blk.att.W_key.lora),
                (p + "attn.c_attn.v", blk.att.W_value.lora), (p + "attn.c_proj", blk.att.out_proj.lora),
                (p + "mlp.c_fc", blk.ff[0].lora), (p + "mlp.c_proj", blk.ff[2].lora)]
    out.append((head_name, model.out_head.lora))
    return out


def base_tensors(model, classifier):
    """The base parameters under ParameterLayout's names (Conv1D weights [in, out])."""
    t = {"wte.weight": model.tok_emb.weight, "wpe.weight": model.pos_emb.weight}
    for i, blk in enumerate(model.trf_blocks):
        p, a = f"h.{i}.", blk.att
        t[p + "ln_1.weight"], t[p + "ln_1.bias"] = blk.norm1.scale, blk.norm1.shift
        t[p + "attn.c_attn.weight"] = torch.cat([a.W_query.linear.weight.T, a.W_key.linear.weight.T,
                                                 a.W_value.linear.weight.T], dim=1)
        t[p + "attn.c_attn.bias"] = torch.cat([a.W_query.linear.bias, a.W_key.linear.bias, a.W_value.linear.bias])
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = a.out_proj.linear.weight.T, a.out_proj.linear.bias
        t[p + "ln_2.weight"], t[p + "ln_2.bias"] = blk.norm2.scale, blk.norm2.shift
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = blk.ff[0].linear.weight.T, blk.ff[0].linear.bias
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = blk.ff[2].linear.weight.T, blk.ff[2].linear.bias
    t["ln_f.weight"], t["ln_f.bias"] = model.final_norm.scale, model.final_norm.shift
    if classifier:
        t["out_head.weight"], t["out_head.bias"] = model.out_head.linear.weight, model.out_head.linear.bias
    return {k: v.detach().clone().contiguous() for k, v in t.items()}


def randomize(model, gen):
    """Larger-than-default random weights (and non-zero B) so every gradient is well above float noise."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("shift") or name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif name.endswith("lora.B"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif name.endswith("lora.A"):
                pass   # keep the book's kaiming-uniform draw
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=gen))


def run_case(case, model, named, ids, loss_fn, meta, extra_golden, finals):
    weights = base_tensors(model, classifier=(case == "cls"))
    for n, lora in named:
        weights[n + ".lora_A"] = lora.A.detach().clone().contiguous()
        weights[n + ".lora_B"] = lora.B.detach().clone().contiguous()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 2 * len(named), "only the adapters train"
    logits, loss = loss_fn()
    loss.backward()
    golden = {"input_ids": ids, "logits": logits.detach(), "loss": loss.detach().reshape(1), **extra_golden}
    for n, lora in named:
        golden["grad." + n + ".lora_A"] = lora.A.grad.clone()
        golden["grad." + n + ".lora_B"] = lora.B.grad.clone()
    trajectory = adamw_trajectory(trainable, loss_fn, STEPS, LR, WEIGHT_DECAY)
    golden["trajectory"] = torch.tensor(trajectory)
    lookup = dict(named)
    for f in finals:
        n, which = f.rsplit(".lora_", 1)
        golden["after." + f] = getattr(lookup[n], which).detach().clone()
    os.makedirs(OUT, exist_ok=True)
    save_file(weights, os.path.join(OUT, f"{case}.weights.safetensors"), metadata=meta)
    save_file({k: v.contiguous() for k, v in golden.items()}, os.path.join(OUT, f"{case}.golden.safetensors"), metadata=meta)
    print(f"{case}: loss {golden['loss'].item():.6f}, trajectory {trajectory[0]:.4f} -> {trajectory[-1]:.4f}")


RANK, ALPHA = 4, 2.0   # alpha != rank and != 1, so alpha vs alpha / rank scaling is told apart


def cls_case():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2024)
    V, T, C, H, L, B, K = 96, 12, 32, 4, 2, 3, 2
    model = GPTModel(V, T, C, H, L)
    model.out_head = torch.nn.Linear(C, K)          # the book: a new head before freezing
    make_lora(model, RANK, ALPHA)
    randomize(model, gen)
    ids = torch.randint(0, V, (B, T), generator=gen)
    labels = torch.tensor([1, 0, 1])

    def loss_fn():
        logits = model(ids)[:, -1, :]
        return logits, torch.nn.functional.cross_entropy(logits, labels)

    meta = {"config": config_json("lora-cls", V, T, C, H, L, "classifier:2"), "lora_rank": str(RANK),
            "lora_alpha": str(ALPHA), "lr": str(LR), "weight_decay": str(WEIGHT_DECAY)}
    run_case("cls", model, adapters(model, "out_head"), ids, loss_fn, meta, {"labels": labels},
             ["out_head.lora_B", "h.0.attn.c_attn.k.lora_A"])


def lm_case():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(7)
    V, T, C, H, L, B = 96, 12, 32, 4, 2, 2
    model = GPTModel(V, T, C, H, L)
    make_lora(model, RANK, ALPHA)
    randomize(model, gen)
    with torch.no_grad():   # the head holds wte, as the book's load_weights_into_gpt assigns it
        model.out_head.linear.weight.copy_(model.tok_emb.weight)
    ids = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    targets[0, :3] = -100
    targets[1, -2:] = -100

    def loss_fn():
        logits = model(ids)
        return logits, torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)

    meta = {"config": config_json("lora-lm", V, T, C, H, L, "lm"), "lora_rank": str(RANK),
            "lora_alpha": str(ALPHA), "lr": str(LR), "weight_decay": str(WEIGHT_DECAY)}
    run_case("lm", model, adapters(model, "lm_head"), ids, loss_fn, meta, {"targets": targets},
             ["lm_head.lora_B", "h.1.mlp.c_fc.lora_A"])


def count_check():
    """The book's count for gpt2-small (124M) with rank 16 and a 2-class head: 2,666,528."""
    with torch.device("meta"):
        model = GPTModel(50257, 1024, 768, 12, 12)
        model.out_head = torch.nn.Linear(768, 2)
        make_lora(model, 16, 16)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"gpt2-small, rank 16, 2-class head: {n:,} trainable LoRA parameters")
    assert n == 2_666_528, n


def init_check():
    """kaiming_uniform_(a=sqrt(5)) on A [in, r] is U(-1/sqrt(r), 1/sqrt(r)): fan-in is r, not in."""
    torch.manual_seed(0)
    layer = LoRALayer(768, 16, 16, 16)
    bound = 1 / math.sqrt(16)
    a = layer.A.detach()
    print(f"A [768, 16]: min {a.min().item():.4f}, max {a.max().item():.4f} (bound {bound}); B all zero: {bool((layer.B == 0).all())}")
    assert a.abs().max().item() <= bound and a.abs().max().item() > 0.99 * bound


if __name__ == "__main__":
    torch.set_num_threads(2)
    count_check()
    init_check()
    cls_case()
    lm_case()
