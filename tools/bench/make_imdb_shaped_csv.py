#!/usr/bin/env python3
"""Writes an IMDb-shaped labelled CSV (`text,label`; labels 0/1, half each) for benchmarks.

IMDb's reviews (the Hugging Face fine-tuning guide's data set) are a few hundred tokens long on
average, with a long tail: roughly one in ten is longer than 512 GPT-2 tokens. We cannot download
IMDb here, so the reviews are made of words drawn from the book's instruction data, with lengths
from a log-normal distribution of that shape (median 120 words, sigma 0.75, at most 2,500 words),
commas, quotes and IMDb's `<br /><br />` paragraph breaks, so the CSV reader sees quoted fields.
Seeded: the same arguments give the same bytes. Python 3 standard library only.

    python3 tools/bench/make_imdb_shaped_csv.py --words ../shared/assets/instruction-data.json \
        --rows 1000 --out /tmp/imdb.csv
"""
import argparse
import csv
import json
import math
import random
import re


def vocabulary(path):
    entries = json.load(open(path, encoding="utf-8"))
    text = " ".join(e[k] for e in entries for k in ("instruction", "input", "output"))
    words = re.findall(r"[A-Za-z']+", text)
    return sorted(set(words))


def review(rng, words):
    n = min(2500, max(10, int(math.exp(rng.gauss(math.log(120), 0.75)))))
    out = []
    for i in range(n):
        w = rng.choice(words)
        out.append(w.capitalize() if i == 0 or out[-1].endswith(".") else w)
        r = rng.random()
        if r < 0.06:
            out[-1] += ","
        elif r < 0.11:
            out[-1] += "."
        elif r < 0.115:
            out[-1] = '"' + out[-1] + '"'
        elif r < 0.118:
            out[-1] += ".<br /><br />"
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--words", required=True, help="instruction-data.json (the source of the words)")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    words = vocabulary(a.words)
    with open(a.out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(a.rows):
            w.writerow([review(rng, words), i % 2])


if __name__ == "__main__":
    main()
