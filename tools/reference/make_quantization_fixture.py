"""Writes Tests/Fixtures/quantization: bitsandbytes' NF4, double-quantized NF4 and int8
vector-wise quantization of small seeded float32 matrices, for QuantizationTests.

Run by a developer in a venv with torch and bitsandbytes (its CPU path), not by CI:

    /tmp/refvenv/bin/pip install torch bitsandbytes
    /tmp/refvenv/bin/python tools/reference/make_quantization_fixture.py --out Tests/Fixtures/quantization

Each case is a weight in nn.Linear's [out, in] layout (what bitsandbytes' Linear4bit holds for
GPT-2's Conv1D [in, out] weight, transposed on load by transformers). Files (little-endian):
  <case>.input.f32          the float32 matrix, row-major
  <case>.nf4.codes.u8       quantize_4bit(..., blocksize=64, quant_type="nf4") packed bytes
  <case>.nf4.absmax.f32     its per-block absmax
  <case>.nf4dq.absmax.u8    compress_statistics=True: the 8-bit codes of absmax - offset
  <case>.nf4dq.absmax2.f32  ... their per-256-block absmax
  <case>.int8.codes.i8      int8_vectorwise_quant: the int8 rows
  <case>.int8.scales.f32    ... the per-row absmax
  <case>.nf4.dequant.f32    dequantize_4bit of the plain NF4 codes
plus reference.json (shapes, offsets, the NF4 code and the 256-value dynamic code).
"""
import argparse
import json
import os

import numpy as np
import torch
import bitsandbytes.functional as F

CASES = {
    # A GPT-2-like weight scale (std 0.02), a matrix with outliers, and one whose element count
    # is not a multiple of 64 (the last block is short).
    "normal": (64, 128, lambda g, s: torch.randn(s, generator=g) * 0.02),
    "outliers": (32, 192, lambda g, s: torch.randn(s, generator=g) * 0.02 + (torch.rand(s, generator=g) < 0.01) * 0.5),
    "ragged": (5, 100, lambda g, s: torch.randn(s, generator=g)),
}


def write(out, name, tensor, dtype):
    np.ascontiguousarray(tensor.detach().cpu().numpy().astype(dtype)).tofile(os.path.join(out, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/Fixtures/quantization")
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    ref = {"cases": {}}
    for name, (rows, cols, make) in CASES.items():
        g = torch.Generator().manual_seed(1234 + rows)
        w = make(g, (rows, cols)).float().contiguous()
        write(out, f"{name}.input.f32", w, "<f4")
        q, st = F.quantize_4bit(w, blocksize=64, quant_type="nf4")
        write(out, f"{name}.nf4.codes.u8", q.reshape(-1), "u1")
        write(out, f"{name}.nf4.absmax.f32", st.absmax, "<f4")
        write(out, f"{name}.nf4.dequant.f32", F.dequantize_4bit(q, st).reshape(-1), "<f4")
        q2, st2 = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
        assert torch.equal(q2, q)
        write(out, f"{name}.nf4dq.absmax.u8", st2.absmax, "u1")
        write(out, f"{name}.nf4dq.absmax2.f32", st2.state2.absmax, "<f4")
        deq2 = F.dequantize_4bit(q2, st2).reshape(-1)
        i8, scales, _ = F.int8_vectorwise_quant(w.clone())
        write(out, f"{name}.int8.codes.i8", i8.reshape(-1), "i1")
        write(out, f"{name}.int8.scales.f32", scales, "<f4")
        ref["cases"][name] = {
            "rows": rows, "cols": cols,
            "nf4_double_offset": st2.offset.item(),
            "nf4_double_dequant_max_abs_error": (deq2 - w.reshape(-1)).abs().max().item(),
            "nf4_dequant_max_abs_error": (F.dequantize_4bit(q, st).reshape(-1) - w.reshape(-1)).abs().max().item(),
        }
        ref["dynamic_code"] = st2.state2.code.tolist()
    ref["nf4_code"] = F.get_4bit_type("nf4", device="cpu").tolist()
    import bitsandbytes
    ref["generator"] = f"bitsandbytes {bitsandbytes.__version__}, torch {torch.__version__}"
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
