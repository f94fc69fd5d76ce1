"""GGUF export proofs: gguf-py writes the same files byte for byte, and llama.cpp itself
(llama-cpp-python) generates the same greedy tokens as our GPT-2 from our GGUF files.

Writes Tests/Fixtures/gguf/parity.json and q8_0_blocks.json, which GGUFTests check.

Run (from the repository root; ~2 minutes on 2 cores):
    python3 -m venv /tmp/venv-gguf && /tmp/venv-gguf/bin/pip install llama-cpp-python gguf numpy
    swift build -c release -Xswiftc -enable-testing --build-tests
    mkdir -p /tmp/gguf-parity
    GGUF_PARITY_OUT=/tmp/gguf-parity swift test -c release -Xswiftc -enable-testing \
        --disable-swift-testing --skip-build --filter GGUFParityInputs
    /tmp/venv-gguf/bin/python tools/reference/gguf_parity.py /tmp/gguf-parity

A real run (gpt2-small trained by `train instruct`, evaluated by `evaluate instruct`):
    mkdir -p /tmp/gguf-run && cp data/instruct-train/model.safetensors /tmp/gguf-run/
    cp data/instruct-eval/instruction-data-with-response.json /tmp/gguf-run/
    cp data/instruct-eval/manifest.json /tmp/gguf-run/evaluate-manifest.json
    GGUF_PARITY_RUN=/tmp/gguf-run swift test -c release -Xswiftc -enable-testing \
        --disable-swift-testing --skip-build --filter GGUFRunParityInputs
    /tmp/venv-gguf/bin/python tools/reference/gguf_parity.py --run /tmp/gguf-run
which writes Tests/Fixtures/gguf/instruct-run.json (a record of the measurement; the Swift
test above checks that our regeneration reproduces the evaluation's responses).

The first step (a Swift test that only runs when GGUF_PARITY_OUT is set) writes the tiny random
checkpoints (plain and LoRA), our GGUF files of every type, and prompts.json with the prompts,
their token ids from our tokenizer, and our own greedy continuations (KV-cached generation).

(a) byte-exact: for every file, this script rebuilds the model from the checkpoint with numpy
    (transposes, LoRA merge W + alpha A B, F16 by astype, Q8_0 by gguf.quants.quantize) and
    writes it with gguf-py's GGUFWriter, adding the metadata in our order; the bytes are
    compared with ours.
(b) llama.cpp: every one of our files is loaded by llama.cpp; its tokenizer is run on the
    prompts and its greedy continuation of our prompt ids recorded (with an F32 key/value cache,
    and with llama.cpp's default F16 cache), with the agreement with our F32 generation.
"""
import hashlib
import json
import os
import struct
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures", "gguf")
VOCAB = os.environ.get("GPT2_VOCAB", os.path.join(os.path.dirname(ROOT), "shared", "assets", "gpt2"))
TYPES = {"f32": (0, Q.F32), "f16": (1, Q.F16), "q8_0": (7, Q.Q8_0)}


def read_safetensors(path):
    """The tensors (float32 numpy arrays) and metadata of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=np.float32).reshape(info["shape"])
    return tensors, meta


def merged(tensors, meta):
    """Base weights with LoRA merged (our convention: W + alpha A B), and the untied head or None."""
    if "lora_rank" not in meta:
        return tensors, None
    alpha = np.float32(float(meta["lora_alpha"]))
    out = {k: v.copy() for k, v in tensors.items() if not (k.endswith(".lora_A") or k.endswith(".lora_B"))}
    head = None
    for name in [k[:-7] for k in tensors if k.endswith(".lora_A")]:
        delta = alpha * (tensors[name + ".lora_A"] @ tensors[name + ".lora_B"])  # [in, out]
        if name == "lm_head":
            # An adapter whose B is still zero leaves the head tied (no output.weight).
            if np.any(tensors[name + ".lora_B"] != 0):
                head = out["wte.weight"] + delta.T
            continue
        part = name.rsplit(".", 1)[-1]
        if part in ("q", "k", "v"):
            c = delta.shape[1]
            j = "qkv".index(part)
            out[name[:-2] + ".weight"][:, j * c:(j + 1) * c] += delta
        else:
            out[name + ".weight"] += delta
    return out, head


def gguf_tensors(t, head, cfg):
    """(name, numpy array in ggml's row-major view) in llama.cpp's gpt2 naming and our order."""
    out = [("token_embd.weight", t["wte.weight"]), ("position_embd.weight", t["wpe.weight"])]
    for i in range(cfg["n_layers"]):
        h, b = f"h.{i}.", f"blk.{i}."
        out += [(b + "attn_norm.weight", t[h + "ln_1.weight"]), (b + "attn_norm.bias", t[h + "ln_1.bias"]),
                (b + "attn_qkv.weight", t[h + "attn.c_attn.weight"].T), (b + "attn_qkv.bias", t[h + "attn.c_attn.bias"]),
                (b + "attn_output.weight", t[h + "attn.c_proj.weight"].T), (b + "attn_output.bias", t[h + "attn.c_proj.bias"]),
                (b + "ffn_norm.weight", t[h + "ln_2.weight"]), (b + "ffn_norm.bias", t[h + "ln_2.bias"]),
                (b + "ffn_up.weight", t[h + "mlp.c_fc.weight"].T), (b + "ffn_up.bias", t[h + "mlp.c_fc.bias"]),
                (b + "ffn_down.weight", t[h + "mlp.c_proj.weight"].T), (b + "ffn_down.bias", t[h + "mlp.c_proj.bias"])]
    out += [("output_norm.weight", t["ln_f.weight"]), ("output_norm.bias", t["ln_f.bias"])]
    if head is not None:
        out.append(("output.weight", head))
    return out


def vocabulary():
    with open(os.path.join(VOCAB, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    tokens = [None] * len(encoder)
    for tok, i in encoder.items():
        tokens[i] = tok
    with open(os.path.join(VOCAB, "vocab.bpe"), encoding="utf-8") as f:
        merges = [line for line in f.read().split("\n")[1:] if line]
    types = [3 if i == 50256 else 1 for i in range(len(tokens))]
    return tokens, types, merges


def write_with_gguf_py(checkpoint, type_name, path, vocab, name="gguf-tiny"):
    """The file our exporter should produce, written by gguf-py's GGUFWriter."""
    tensors, meta = read_safetensors(checkpoint)
    cfg = json.loads(meta["config"])
    t, head = merged(tensors, meta)
    w = gguf.GGUFWriter(path, "gpt2")  # general.architecture first
    w.add_name(name)
    w.add_file_type(TYPES[type_name][0])
    w.add_quantization_version(2)
    w.add_uint32("general.alignment", 32)
    w.add_context_length(cfg["context_length"])
    w.add_embedding_length(cfg["emb_dim"])
    w.add_feed_forward_length(4 * cfg["emb_dim"])
    w.add_block_count(cfg["n_layers"])
    w.add_head_count(cfg["n_heads"])
    w.add_layer_norm_eps(1e-5)
    tokens, types, merges = vocab
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(50256)
    w.add_eos_token_id(50256)
    w.add_unk_token_id(50256)
    w.add_add_bos_token(False)
    for name, arr in gguf_tensors(t, head, cfg):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        # llama.cpp's converter: 1-D tensors, norms and the position table stay F32.
        qtype = TYPES[type_name][1]
        if arr.ndim == 1 or name == "position_embd.weight":
            qtype = Q.F32
        if qtype == Q.F32:
            w.add_tensor(name, arr)
        elif qtype == Q.F16:
            w.add_tensor(name, arr.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, Q.Q8_0), raw_dtype=Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def compare_bytes(ours, theirs):
    a, b = open(ours, "rb").read(), open(theirs, "rb").read()
    if a == b:
        return {"identical": True}
    first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    diff = sum(x != y for x, y in zip(a, b))
    return {"identical": False, "sizes": [len(a), len(b)], "first_difference": first, "bytes_differing": diff}


def value_difference(ours, theirs):
    """Largest |difference| of the dequantized tensors of two GGUF files."""
    ra, rb = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
    worst = 0.0
    for ta, tb in zip(ra.tensors, rb.tensors):
        da = gguf.quants.dequantize(ta.data, ta.tensor_type).astype(np.float64)
        db = gguf.quants.dequantize(tb.data, tb.tensor_type).astype(np.float64)
        worst = max(worst, float(np.abs(da - db).max()))
    return worst


def llama_greedy(path, prompt_ids, prompts, steps, f32_cache, eos=None, n_ctx=128):
    """llama.cpp's greedy continuation of every prompt (argmax of its logits, so no sampler
    settings are involved) and its tokenization of the prompt texts. `f32_cache`: keep the
    attention's key/value cache in F32 (ggml type 0) instead of llama.cpp's default F16, which
    rounds K and V to half precision (~1e-3 relative) and on its own can flip near-ties."""
    from llama_cpp import Llama
    cache = {"type_k": 0, "type_v": 0} if f32_cache else {}
    llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_threads=2, logits_all=True, verbose=False, **cache)
    tokenized = [llm.tokenize(p.encode("utf-8"), add_bos=False, special=False) for p in prompts]
    outs = []
    for ids in prompt_ids:
        llm.reset()
        llm.eval(ids)
        out = []
        for _ in range(steps):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if tok == eos:
                break
            out.append(tok)
            llm.eval([tok])
        outs.append(out)
    return outs, tokenized


def agreement(ours, theirs):
    """Tokens equal position by position, and the longest common prefix per prompt."""
    same = sum(a == b for o, t in zip(ours, theirs) for a, b in zip(o, t))
    prefixes = []
    for o, t in zip(ours, theirs):
        n = 0
        while n < len(o) and o[n] == t[n]:
            n += 1
        prefixes.append(n)
    return {"equal_tokens": same, "total_tokens": sum(map(len, ours)), "common_prefix": prefixes}


def q8_0_blocks():
    """A few Q8_0 blocks from gguf-py's quantizer (bit-exact with ggml's reference), with edge cases."""
    rng = np.random.default_rng(7)
    rows = [rng.normal(0, 1, 32), rng.normal(0, 0.02, 32), np.zeros(32), np.linspace(-1, 1, 32),
            np.array([127.0] + [63.5, -63.5, 0.5, -0.5, 1.5] + [0.0] * 26), rng.uniform(-300, 300, 32)]
    x = np.stack(rows).astype(np.float32)
    q = gguf.quants.quantize(x.reshape(-1), Q.Q8_0)
    halves = x.astype(np.float16).view(np.uint16)
    return {"values": [[float(v) for v in r] for r in x],
            "q8_0_hex": bytes(q).hex(),
            "f16_bits": [[int(v) for v in r] for r in halves]}


def run_parity(folder, vocab):
    """A real `train instruct` checkpoint (gpt2-small): gguf-py's bytes and llama.cpp's greedy
    responses (64 tokens, stopping at <|endoftext|> like `evaluate instruct`) against ours."""
    with open(os.path.join(folder, "run.json")) as f:
        inputs = json.load(f)
    report = {"files": {}, "prompts": inputs["prompts"], "ours": inputs["ours"],
              "our_responses_equal_evaluate_instruct": inputs["responses_equal_evaluate"]}
    for type_name in TYPES:
        name = f"run-{type_name}.gguf"
        ours = os.path.join(folder, name)
        theirs = os.path.join(folder, "gguf-py-" + name)
        write_with_gguf_py(os.path.join(folder, "model.safetensors"), type_name, theirs, vocab, name="instruct-run")
        entry = {"sha256": sha256(ours), "bytes": compare_bytes(ours, theirs)}
        os.remove(theirs)
        for key, f32_cache in (("", True), ("_f16_cache", False)):
            greedy, tokenized = llama_greedy(ours, inputs["prompt_ids"], inputs["prompts"], inputs["max_new_tokens"],
                                             f32_cache, eos=inputs["eos"], n_ctx=256)
            entry["llama_cpp_greedy" + key] = greedy
            entry["agreement_with_ours_f32" + key] = agreement(inputs["ours"], greedy)
        entry["llama_cpp_tokenization_equal"] = tokenized == inputs["prompt_ids"]
        report["files"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if not k.startswith("llama_cpp_greedy")}))
    with open(os.path.join(FIXTURES, "instruct-run.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        run_parity(sys.argv[2], vocabulary())
        return
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/gguf-parity"
    with open(os.path.join(folder, "prompts.json")) as f:
        inputs = json.load(f)
    vocab = vocabulary()
    report = {"gguf_py_version": getattr(gguf, "__version__", "0.19.0"), "files": {}}
    try:
        import llama_cpp
        report["llama_cpp_python_version"] = llama_cpp.__version__
    except ImportError:
        llama_cpp = None
    for lora in (False, True):
        checkpoint = os.path.join(folder, "tiny-lora.safetensors" if lora else "tiny.safetensors")
        ours_tokens = inputs["ours_lora" if lora else "ours"]
        for type_name in TYPES:
            name = f"tiny-{'lora-' if lora else ''}{type_name}.gguf"
            ours = os.path.join(folder, name)
            with tempfile.TemporaryDirectory() as tmp:
                theirs = os.path.join(tmp, name)
                write_with_gguf_py(checkpoint, type_name, theirs, vocab)
                entry = {"sha256": sha256(ours), "gguf_py_sha256": sha256(theirs), "bytes": compare_bytes(ours, theirs)}
                if not entry["bytes"]["identical"]:
                    entry["max_value_difference"] = value_difference(ours, theirs)
            greedy, tokenized = llama_greedy(ours, inputs["prompt_ids"], inputs["prompts"], inputs["max_new_tokens"], True)
            entry["llama_cpp_greedy"] = greedy
            entry["agreement_with_ours_f32"] = agreement(ours_tokens, greedy)
            default_kv, _ = llama_greedy(ours, inputs["prompt_ids"], inputs["prompts"], inputs["max_new_tokens"], False)
            entry["llama_cpp_greedy_f16_cache"] = default_kv
            entry["agreement_with_ours_f32_f16_cache"] = agreement(ours_tokens, default_kv)
            entry["llama_cpp_tokenization_equal"] = tokenized == inputs["prompt_ids"]
            report["files"][name] = entry
            print(name, json.dumps({k: v for k, v in entry.items() if not k.startswith("llama_cpp_greedy")}))
    report["prompts"] = inputs["prompts"]
    report["prompt_ids"] = inputs["prompt_ids"]
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, "parity.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    with open(os.path.join(FIXTURES, "q8_0_blocks.json"), "w") as f:
        json.dump(q8_0_blocks(), f, indent=1)


if __name__ == "__main__":
    main()
