#!/usr/bin/env python3
"""Helper of tools/bench/tokenizer.sh: builds the benchmark corpus and times tiktoken on it.

  corpus  --assets DIR --out FILE [--min-bytes N]   writes JSON lines: every SMS text and every
          Alpaca-formatted instruction entry, repeated until the corpus holds N bytes of UTF-8.
  tiktoken --vocab DIR --corpus FILE --runs N --threads T   prints one JSON object of timings.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from make_tokenizer_fixture import instruction_texts, offline_gpt2, sms_texts  # noqa: E402


def make_corpus(args):
    documents = sms_texts(args.assets) + instruction_texts(args.assets)
    corpus, size = [], 0
    while size < args.min_bytes:
        for text in documents:
            corpus.append(text)
            size += len(text.encode("utf-8"))
    with open(args.out, "w", encoding="utf-8") as handle:
        for text in corpus:
            handle.write(json.dumps(text, ensure_ascii=False) + "\n")
    print(f"corpus: {len(corpus)} documents, {size} bytes", file=sys.stderr)


def time_tiktoken(args):
    enc = offline_gpt2(args.vocab)
    with open(args.corpus, encoding="utf-8") as handle:
        texts = [json.loads(line) for line in handle]
    single, batch = [], []
    tokens, checksum = 0, 0
    for _ in range(args.runs):
        start = time.perf_counter()
        encoded = [enc.encode_ordinary(text) for text in texts]
        single.append(time.perf_counter() - start)
        start = time.perf_counter()
        batched = enc.encode_ordinary_batch(texts, num_threads=args.threads)
        batch.append(time.perf_counter() - start)
        assert batched == encoded
    tokens = sum(len(ids) for ids in encoded)
    for ids in encoded:  # same rolling checksum as bench-tokenizer, to prove identical output
        for token in ids:
            checksum = (checksum * 31 + token) % (1 << 64)
    print(json.dumps({"tokens": tokens, "checksum": str(checksum), "single_seconds": single,
                      "batch_seconds": batch, "tiktoken": __import__("tiktoken").__version__}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    corpus = sub.add_parser("corpus")
    corpus.add_argument("--assets", type=Path, required=True)
    corpus.add_argument("--out", type=Path, required=True)
    corpus.add_argument("--min-bytes", type=int, default=1_400_000)
    tik = sub.add_parser("tiktoken")
    tik.add_argument("--vocab", type=Path, required=True)
    tik.add_argument("--corpus", type=Path, required=True)
    tik.add_argument("--runs", type=int, default=5)
    tik.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    make_corpus(args) if args.command == "corpus" else time_tiktoken(args)


if __name__ == "__main__":
    main()
