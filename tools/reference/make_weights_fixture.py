#!/usr/bin/env python3
"""Builds the weight-file fixtures in Tests/Fixtures/weights with the real libraries.

Run by developers in the project venv (torch + transformers + safetensors), not by CI:

    /work/venv/bin/python tools/reference/make_weights_fixture.py          # (re)write fixtures
    /work/venv/bin/python tools/reference/make_weights_fixture.py --check  # also verify the
        # Swift-written checkpoint Tests/Fixtures/weights/swift-checkpoint.safetensors

A tiny GPT-2 (2 layers, 64 wide, 4 heads, vocab 300, 32 positions) is built with
transformers and its parameters are jittered so that no tensor is all ones / all zeros
(a LayerNorm weight swapped with its bias must show up as a wrong value). It is written:

  tiny-gpt2/model.safetensors            GPT2Model.save_pretrained (F32, names as on the Hub)
  tiny-gpt2-f16/model.safetensors        the same model in half precision
  tiny-gpt2-lmhead/model.safetensors     GPT2LMHeadModel.save_pretrained ("transformer." prefix)
  tiny-gpt2-hubstyle.safetensors         safetensors.torch.save_file in BF16 with the
                                         non-parameter buffers h.{i}.attn.bias / masked_bias
                                         and an explicit lm_head.weight, like older Hub files
  expected.json                          per file and tensor: shape, dtype, sum, a few values

With --tf (run in a venv that has tensorflow-cpu; TensorFlow is not in the project venv:
`python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu`), the same tiny
model is written as OpenAI's GPT-2 release is laid out, by TensorFlow's own SaveV2 op:

  tiny-gpt2-tf/{checkpoint, hparams.json, model.ckpt.index, model.ckpt.data-00000-of-00001}

with OpenAI's variable names (model/wte, model/h0/attn/c_attn/w as [1, C, 3C], ...). It reads
tiny-gpt2/model.safetensors with numpy only, so run the plain mode first.

The Swift tests (Tests/GPT2Tests/WeightsHFTests.swift) load these files and compare.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

if "--tf" not in sys.argv:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "weights")

TINY = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=300, n_positions=32)


def build_model():
    torch.manual_seed(1234)
    cfg = GPT2Config(**TINY)
    lm = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for p in lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    lm.eval()
    return cfg, lm


def describe(path):
    """Shape, dtype and value samples of every tensor, read back with the safetensors package."""
    out = {}
    with safe_open(path, framework="pt") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            flat = t.to(torch.float64).flatten() if t.is_floating_point() else t.flatten().to(torch.float64)
            entry = {
                "shape": list(t.shape),
                "dtype": str(t.dtype).replace("torch.", ""),
                "sum": float(flat.sum()),
                "sum_abs": float(flat.abs().sum()),
                "first": [float(x) for x in flat[:4]],
                "last": float(flat[-1]) if flat.numel() else None,
            }
            if t.dim() == 2:
                # One off-diagonal element pins the orientation ([in, out] vs transposed).
                entry["at_1_2"] = float(t[1, 2].to(torch.float64))
            out[name] = entry
    return out


def write_fixtures():
    os.makedirs(OUT, exist_ok=True)
    cfg, lm = build_model()

    base = lm.transformer
    base.save_pretrained(os.path.join(OUT, "tiny-gpt2"), safe_serialization=True)
    lm.save_pretrained(os.path.join(OUT, "tiny-gpt2-lmhead"), safe_serialization=True)

    half = GPT2Model(cfg)
    half.load_state_dict(base.state_dict())
    half.half().save_pretrained(os.path.join(OUT, "tiny-gpt2-f16"), safe_serialization=True)

    # Older Hub files (openai-community/gpt2) carry the causal-mask buffers and sometimes an
    # explicit lm_head.weight; save_file writes exactly the dict given.
    hub = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in base.state_dict().items()}
    T = cfg.n_positions
    for i in range(cfg.n_layer):
        hub[f"h.{i}.attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T).to(torch.bfloat16)
        hub[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4).to(torch.bfloat16)
    hub["lm_head.weight"] = hub["wte.weight"].clone()
    save_file(hub, os.path.join(OUT, "tiny-gpt2-hubstyle.safetensors"), metadata={"format": "pt"})

    # Drop the config.json / generation_config.json that save_pretrained writes beside the
    # weights except the one of the plain model (the tests read that one for inferConfig).
    for d in ["tiny-gpt2-f16", "tiny-gpt2-lmhead"]:
        for extra in ["config.json", "generation_config.json"]:
            p = os.path.join(OUT, d, extra)
            if os.path.exists(p):
                os.remove(p)
    gen = os.path.join(OUT, "tiny-gpt2", "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

    files = {
        "tiny-gpt2/model.safetensors": None,
        "tiny-gpt2-f16/model.safetensors": None,
        "tiny-gpt2-lmhead/model.safetensors": None,
        "tiny-gpt2-hubstyle.safetensors": None,
    }
    expected = {
        "generator": "tools/reference/make_weights_fixture.py",
        "torch": torch.__version__,
        "config": TINY,
        "files": {},
    }
    for rel in files:
        p = os.path.join(OUT, rel)
        expected["files"][rel] = {
            "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest(),
            "bytes": os.path.getsize(p),
            "tensors": describe(p),
        }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    for rel, info in expected["files"].items():
        print(f"{rel}: {info['bytes']} bytes, {len(info['tensors'])} tensors")


def check_swift_checkpoint():
    """Proves a checkpoint written by Swift's saveCheckpoint loads in Python and in transformers."""
    path = os.path.join(OUT, "swift-checkpoint.safetensors")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run the Swift tests with LLMFT_WRITE_FIXTURES=1 first")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        names = list(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
    assert meta["format"] == "llm-finetune-checkpoint", meta
    assert meta["format_version"] == "1", meta
    config = json.loads(meta["config"])
    head = json.loads(meta["head"])
    print("metadata:", {k: (v if len(v) < 80 else v[:77] + "...") for k, v in meta.items()})

    # params_sha256 is over the little-endian float32 bytes in ParameterLayout order, which is
    # the header order of the file (the Swift writer keeps it): recompute it independently.
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
    order = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    h = hashlib.sha256()
    for k in order:
        h.update(tensors[k].numpy().astype("<f4").tobytes())
    assert h.hexdigest() == meta["params_sha256"], (h.hexdigest(), meta["params_sha256"])
    print("params_sha256 matches:", h.hexdigest())

    hf = GPT2Config(n_layer=config["n_layers"], n_embd=config["emb_dim"], n_head=config["n_heads"],
                    vocab_size=config["vocab_size"], n_positions=config["context_length"])
    model = GPT2Model(hf)
    body = {k: v for k, v in tensors.items() if not k.startswith("out_head.")}
    missing, unexpected = model.load_state_dict(body, strict=False)
    # transformers keeps the causal mask as non-persistent buffers, so nothing may be missing.
    assert not missing and not unexpected, (missing, unexpected)
    print(f"loads into transformers GPT2Model: {len(body)} tensors, head {head}")
    if "out_head.weight" in tensors:
        k = head["classifier"]["numClasses"]
        assert list(tensors["out_head.weight"].shape) == [k, config["emb_dim"]]
        assert list(tensors["out_head.bias"].shape) == [k]
        lin = torch.nn.Linear(config["emb_dim"], k)
        lin.load_state_dict({"weight": tensors["out_head.weight"], "bias": tensors["out_head.bias"]})
        print(f"out_head loads into torch.nn.Linear({config['emb_dim']}, {k})")
    print("swift checkpoint OK")


def read_safetensors_numpy(path):
    """A minimal safetensors reader (F32 only) so the TF venv needs no torch."""
    import numpy
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        out[name] = numpy.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
    return out


def tf_name(hf):
    """HF name -> OpenAI TF variable name (the inverse of TFCheckpoint.hfName in Swift)."""
    parts = hf.split(".")
    if hf in ("wte.weight", "wpe.weight"):
        return "model/" + parts[0]
    leaf = {"weight": "g", "bias": "b"}
    if parts[0] == "ln_f":
        return "model/ln_f/" + leaf[parts[1]]
    i = parts[1]
    if parts[2] in ("ln_1", "ln_2"):
        return f"model/h{i}/{parts[2]}/" + leaf[parts[3]]
    return f"model/h{i}/{parts[2]}/{parts[3]}/" + {"weight": "w", "bias": "b"}[parts[4]]


def write_tf_fixture():
    import tensorflow as tf

    src = read_safetensors_numpy(os.path.join(OUT, "tiny-gpt2", "model.safetensors"))
    out_dir = os.path.join(OUT, "tiny-gpt2-tf")
    os.makedirs(out_dir, exist_ok=True)
    names, tensors = [], []
    for hf, value in sorted(src.items()):
        name = tf_name(hf)
        if name.endswith("/w"):
            value = value.reshape((1,) + value.shape)  # TF Conv1D kernels are [1, in, out]
        names.append(name)
        tensors.append(tf.constant(value))
    prefix = os.path.join(out_dir, "model.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    with open(os.path.join(out_dir, "checkpoint"), "w") as f:
        # An absolute path from the writing machine, as TF records it: the loader must use only
        # the last component (the files sit beside the `checkpoint` file wherever it is copied).
        f.write('model_checkpoint_path: "/tmp/tiny-gpt2-tf/model.ckpt"\n'
                'all_model_checkpoint_paths: "/tmp/tiny-gpt2-tf/model.ckpt"\n')
    with open(os.path.join(out_dir, "hparams.json"), "w") as f:
        json.dump({"n_vocab": TINY["vocab_size"], "n_ctx": TINY["n_positions"], "n_embd": TINY["n_embd"],
                   "n_head": TINY["n_head"], "n_layer": TINY["n_layer"]}, f, indent=2)
    # Read back with TensorFlow's own reader.
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    assert len(shapes) == len(names), (len(shapes), len(names))
    for name, value in zip(names, tensors):
        assert (reader.get_tensor(name) == value.numpy()).all(), name
    print(f"tiny-gpt2-tf: {len(names)} tensors written by tf.raw_ops.SaveV2 (TensorFlow {tf.__version__})")
    for fn in sorted(os.listdir(out_dir)):
        print(" ", fn, os.path.getsize(os.path.join(out_dir, fn)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="only verify the Swift-written checkpoint")
    ap.add_argument("--tf", action="store_true", help="write tiny-gpt2-tf with TensorFlow (TF venv)")
    args = ap.parse_args()
    if args.check:
        check_swift_checkpoint()
    elif args.tf:
        write_tf_fixture()
    else:
        write_fixtures()
