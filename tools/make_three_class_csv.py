#!/usr/bin/env python3
"""Makes a three-class labelled CSV from the book's 1,100 Alpaca instruction entries, the demo
input of pipelines/classify-your-data.yaml (docs/your-data.md, "Classify your own texts").

Each instruction is labelled by the task family of its first word (lower-cased, trailing
punctuation stripped), a transparent rule anyone can check by reading the file:

    transform   rewrite convert translate edit change correct transform rearrange reword
                alter paraphrase reverse arrange sort combine replace turn make
                (the answer is the given text changed)
    question    what which who when where why how name identify define is are
                (the answer is a fact)
    generate    generate write create provide suggest compose list describe explain give
                come design develop brainstorm (the answer is new text)

Instructions starting with any other word (classify, calculate, categorize, find, ...) are
left out and counted on stderr. The CSV has a header `id,instruction,task` (id: the entry's
0-based position in the JSON list), fields quoted where needed by Python's csv module, rows in
the JSON file's order. With the book's data that gives 947 rows: 416 question, 342 transform,
189 generate (checked by `--expect-rows`, if given).

Only the standard library; deterministic. Written to a temporary file and renamed into place.

    python3 tools/make_three_class_csv.py --input ../shared/assets/instruction-data.json --out data/tasks.csv
"""
import argparse
import collections
import csv
import json
import os
import sys
import tempfile

FAMILIES = {
    "transform": "rewrite convert translate edit change correct transform rearrange reword alter paraphrase "
                 "reverse arrange sort combine replace turn make",
    "question": "what which who when where why how name identify define is are",
    "generate": "generate write create provide suggest compose list describe explain give come design develop brainstorm",
}
FAMILY_OF = {word: family for family, words in FAMILIES.items() for word in words.split()}


def family(instruction):
    words = instruction.split()
    return FAMILY_OF.get(words[0].lower().strip(",.:;?!\"'")) if words else None


def rows(entries):
    kept, skipped = [], collections.Counter()
    for i, entry in enumerate(entries):
        task = family(entry["instruction"])
        if task is None:
            skipped[entry["instruction"].split()[0].lower() if entry["instruction"].split() else "(empty)"] += 1
        else:
            kept.append((i, entry["instruction"], task))
    return kept, skipped


def write_atomically(path, kept):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tasks.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["id", "instruction", "task"])
            w.writerows(kept)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="the book's instruction-data.json")
    ap.add_argument("--out", required=True, help="the CSV to write")
    ap.add_argument("--expect-rows", type=int, help="fail unless exactly this many rows are kept")
    args = ap.parse_args()
    with open(args.input, encoding="utf-8") as f:
        entries = json.load(f)
    kept, skipped = rows(entries)
    if args.expect_rows is not None and len(kept) != args.expect_rows:
        sys.exit(f"error: {args.input}: {len(kept)} rows kept, expected {args.expect_rows}")
    write_atomically(args.out, kept)
    counts = collections.Counter(task for _, _, task in kept)
    print(f"wrote {args.out}: {len(kept)} rows ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
          f"left out {sum(skipped.values())} of {len(entries)} entries whose first word is in no family "
          f"(most common: {', '.join(f'{w} {n}' for w, n in skipped.most_common(5))})", file=sys.stderr)


if __name__ == "__main__":
    main()
