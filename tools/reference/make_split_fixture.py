#!/usr/bin/env python3
"""Reference fixtures for the DataPrep target (chapter 6 classification data).

Run by a developer in the project's Python venv (pandas, numpy, tiktoken), not by CI:

    /work/venv/bin/python tools/reference/make_split_fixture.py \
        --assets ../shared/assets --out Tests/Fixtures/dataprep

It writes small files that the Swift tests compare against:
  randomstate.json  numpy legacy RandomState: raw uint32 draws, permutations, bounded ints
  tsv_cases.json    synthetic TSV inputs and what pandas.read_csv(sep="\t") makes of them
  csv_cases.json    small frames and the exact bytes of DataFrame.to_csv(index=None)
  sms_rows.txt      the real SMSSpamCollection parsed by pandas: one "label sha256[:16]" per row
  splits.json       the book's balance/shuffle/split of the real data: original row indices per
                    split, the CSV files' sha256, and tiktoken token statistics and hashes

The book's code (chapter 6) is reproduced step by step below so that the fixture is the book's
result, not this project's reading of it.
"""
import argparse
import base64
import csv
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile

import numpy as np
import pandas as pd
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str


def read_tsv(data: bytes) -> pd.DataFrame:
    # Exactly the book's call (apart from reading from bytes).
    return pd.read_csv(io.BytesIO(data), sep="\t", header=None, names=["Label", "Text"])


def cell(v):
    return None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v)


# ---------------------------------------------------------------- RandomState
def randomstate_fixture():
    out = {"numpy_version": np.__version__, "raw": [], "permutations": [], "bounded": []}
    for seed in [0, 1, 123, 42, 2**32 - 1]:
        rs = np.random.RandomState(seed)
        draws = rs.randint(0, 2**32, size=1300, dtype=np.uint64)  # 32-bit masked: raw next_uint32
        out["raw"].append({"seed": seed, "first": [int(x) for x in draws[:16]],
                           "sha256_first_1300_u32le": hashlib.sha256(
                               draws.astype("<u4").tobytes()).hexdigest()})
    # (a one-element array is squeezed to a scalar seed by numpy, so arrays here have two or more)
    for seed_array in [[1, 2, 3], [123, 456], [0, 4294967295, 7, 9]]:
        rs = np.random.RandomState(np.array(seed_array, dtype=np.int64))
        draws = rs.randint(0, 2**32, size=16, dtype=np.uint64)
        out["raw"].append({"seed_array": seed_array, "first": [int(x) for x in draws]})
    for seed in [0, 1, 123, 2**32 - 1]:
        for n in [0, 1, 2, 3, 5, 10, 100, 1000]:
            out["permutations"].append({"seed": seed, "n": n,
                                        "permutation": [int(x) for x in np.random.RandomState(seed).permutation(n)]})
    # The two draws the book makes, in the shape it makes them (via pandas' DataFrame.sample).
    out["choice_book_balance"] = {"seed": 123, "n": 4825, "size": 747, "choice": [
        int(x) for x in np.random.RandomState(123).choice(4825, size=747, replace=False)]}
    out["choice_book_shuffle"] = {"seed": 123, "n": 1494, "size": 1494, "choice": [
        int(x) for x in np.random.RandomState(123).choice(1494, size=1494, replace=False)]}
    # Masked rejection sampling on 32-bit and 64-bit draws (legacy randint uses the same
    # algorithm as the legacy shuffle's random_interval).
    for seed, max_value in [(7, 6), (7, 1000), (123, 2**31 + 5), (123, 2**32 - 1), (5, 2**32), (5, 2**40 + 3)]:
        vals = np.random.RandomState(seed).randint(0, max_value + 1, size=40, dtype=np.int64)
        out["bounded"].append({"seed": seed, "max": max_value, "values": [int(x) for x in vals]})
    return out


# ---------------------------------------------------------------- TSV parsing
TSV_CASES = [
    ("plain", "ham\thello there\nspam\tWIN a prize\n"),
    ("quote_mid_field", 'ham\tsay "hi" now\nspam\tit\'s "quoted" twice "x"\n'),
    ("quoted_tab_newline", 'ham\t"a\tb\nc"\nspam\tx\n'),
    ("escaped_quotes", 'ham\t"He said ""yo"" ok"\nspam\t""""\n'),
    ("chars_after_closing_quote", 'ham\t"quoted"tail text\nspam\t"ab"c"d\n'),
    ("crlf", "ham\ta\r\nspam\tb\r\n"),
    ("bare_cr", "ham\ta\rspam\tb\r"),
    ("trailing_empty_lines", "ham\ta\nspam\tb\n\n\n\n"),
    ("blank_and_space_lines", "ham\tx\n\n   \nspam\ty\n"),
    ("no_final_newline", "ham\ta\nspam\tb"),
    ("missing_text", "ham\nspam\tb\n"),
    ("empty_text", "ham\t\nspam\tb\n"),
    ("empty_quoted_text", 'ham\t""\nspam\tb\n'),
    ("na_strings", "ham\tNA\nspam\tnull\nham\tn/a\nham\tNaN \n"),
    ("bom", "\ufeffham\tx\nspam\ty\n"),
    ("quoted_label", '"ham"\ttext\n"sp""am"\tz\n'),
    ("leading_spaces", "  ham\tx\nspam\t  y  \n"),
    ("cr_then_tab", "ham\ta\r\tb\n"),
    ("blank_cr_then_tab", "ham\ta\n\r\tfoo\n"),
    ("tab_only_line", "ham\tx\n\t\nspam\ty\n"),
    ("quoted_then_cr", 'ham\t"a"\r\nspam\t"b"\rham\tc\n'),
    ("unicode", "ham\tcaf\u00e9 \u00a3100 \U0001F600\nspam\t\u2019quote\u2019\n"),
    ("trailing_tab_text", "ham\tx\nham\ta b\t\n"),
    ("unterminated_quote", 'ham\t"never closed\nspam\tb\n'),
    ("extra_field_second_line", "ham\ta\nspam\tb\tc\n"),
    ("empty_file", ""),
    ("only_blank_lines", "\n\n  \n"),
]


def tsv_fixture():
    cases = []
    for name, text in TSV_CASES:
        entry = {"name": name, "input": text}
        try:
            df = read_tsv(text.encode("utf-8"))
            if list(df.index) != list(range(len(df))):
                raise SystemExit(f"case {name}: pandas used an implicit index; not a supported case")
            entry["rows"] = [[cell(l), cell(t)] for l, t in zip(df["Label"], df["Text"])]
        except pd.errors.EmptyDataError as e:
            entry["error"] = "empty: " + str(e)
        except pd.errors.ParserError as e:
            entry["error"] = str(e).strip()
        cases.append(entry)
    return {"pandas_version": pd.__version__, "cases": cases}


# ---------------------------------------------------------------- CSV writing
CSV_TEXTS = ["plain text", "comma, inside", 'quote " inside', '"starts with quote', "new\nline",
             "crlf\r\nline", "tab\tinside", "  leading and trailing  ", "semi;colon", "caf\u00e9 \U0001F600",
             "'single'", "ends with comma,", "#hash", "back\\slash"]


def csv_fixture():
    df = pd.DataFrame({"Label": [i % 2 for i in range(len(CSV_TEXTS))], "Text": CSV_TEXTS})
    data = df.to_csv(index=None).encode("utf-8")
    # A bare CR: CPython's csv module quotes it only since 3.11.9 / 3.12.3 (gh-67044); older
    # interpreters leave it bare, and read_csv then splits the row. We follow the fixed rule and
    # prove here that pandas reads our bytes back as the same text.
    cr_bytes = b'Label,Text\n1,"bare\rreturn"\n'
    back = pd.read_csv(io.BytesIO(cr_bytes))
    assert back["Text"].tolist() == ["bare\rreturn"], back
    return {"python_version": sys.version.split()[0], "pandas_version": pd.__version__,
            "labels": df["Label"].tolist(), "texts": CSV_TEXTS,
            "csv_base64": base64.b64encode(data).decode("ascii"),
            "bare_cr": {"labels": [1], "texts": ["bare\rreturn"],
                        "csv_base64": base64.b64encode(cr_bytes).decode("ascii")}}


# ---------------------------------------------------------------- the book's pipeline
def gpt2_encoding(gpt2_dir):
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(gpt2_dir, "vocab.bpe"),
        encoder_json_file=os.path.join(gpt2_dir, "encoder.json"))
    return tiktoken.Encoding(name="gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)


def create_balanced_dataset(df):
    num_spam = df[df["Label"] == "spam"].shape[0]
    ham_subset = df[df["Label"] == "ham"].sample(num_spam, random_state=123)
    return pd.concat([ham_subset, df[df["Label"] == "spam"]])


def random_split(df, train_frac, validation_frac):
    df = df.sample(frac=1, random_state=123).reset_index(drop=True)
    train_end = int(len(df) * train_frac)
    validation_end = train_end + int(len(df) * validation_frac)
    return df[:train_end], df[train_end:validation_end], df[validation_end:]


def token_block(texts, labels, enc, max_length, pad=50256):
    """The book's SpamDataset: encode, truncate to max_length, pad with pad."""
    encoded = [enc.encode(t) for t in texts]
    lengths = [min(len(e), max_length) for e in encoded]
    truncated = sum(1 for e in encoded if len(e) > max_length)
    rows = [e[:max_length] + [pad] * (max_length - len(e[:max_length])) for e in encoded]
    tokens = np.array(rows, dtype="<u2").reshape(-1)
    return {"rows": len(rows), "longest_tokens": max(len(e) for e in encoded), "truncated": truncated,
            "tokens_sha256": hashlib.sha256(tokens.tobytes()).hexdigest(),
            "labels_sha256": hashlib.sha256(np.array(labels, dtype="<i4").tobytes()).hexdigest(),
            "lengths_sha256": hashlib.sha256(np.array(lengths, dtype="<i4").tobytes()).hexdigest()}


def real_data_fixtures(assets, out_dir):
    with zipfile.ZipFile(os.path.join(assets, "sms-spam-collection.zip")) as z:
        raw = z.read("SMSSpamCollection")
    df = read_tsv(raw)
    with open(os.path.join(out_dir, "sms_rows.txt"), "w") as f:
        for label, text in zip(df["Label"], df["Text"]):
            f.write(f"{label} {hashlib.sha256(str(text).encode('utf-8')).hexdigest()[:16]}\n")

    df = df.copy()
    df["Row"] = np.arange(len(df))  # original row position, carried through to prove the order
    balanced = create_balanced_dataset(df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train, validation, test = random_split(balanced, 0.7, 0.1)
    enc = gpt2_encoding(os.path.join(assets, "gpt2"))

    result = {"pandas_version": pd.__version__, "numpy_version": np.__version__,
              "tsv_rows": len(df), "ham": int((df["Label"] == "ham").sum()),
              "spam": int((df["Label"] == "spam").sum()), "splits": {}}
    tmp = tempfile.mkdtemp()
    train_max = max(len(enc.encode(t)) for t in train["Text"])
    for name, part in [("train", train), ("validation", validation), ("test", test)]:
        path = os.path.join(tmp, name + ".csv")
        part[["Label", "Text"]].to_csv(path, index=None)  # the book's call, without our helper column
        data = open(path, "rb").read()
        # The book's SpamDataset re-reads the CSV; prove the round trip keeps every text.
        back = pd.read_csv(path)
        assert back["Text"].tolist() == part["Text"].tolist(), name
        texts, labels = part["Text"].tolist(), part["Label"].tolist()
        result["splits"][name] = {
            "rows": len(part), "ham": int((part["Label"] == 0).sum()), "spam": int((part["Label"] == 1).sum()),
            "original_rows": [int(x) for x in part["Row"]],
            "csv_sha256": hashlib.sha256(data).hexdigest(), "csv_size": len(data),
            "max_length_longest": token_block(texts, labels, enc, train_max),
            "max_length_64": token_block(texts, labels, enc, 64),
        }
    result["train_longest_tokens"] = train_max
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--out", default="Tests/Fixtures/dataprep")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    def dump(name, obj):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(obj, f, indent=1, ensure_ascii=True)
            f.write("\n")

    dump("randomstate.json", randomstate_fixture())
    dump("tsv_cases.json", tsv_fixture())
    dump("csv_cases.json", csv_fixture())
    dump("splits.json", real_data_fixtures(args.assets, args.out))
    print("wrote fixtures to", args.out)


if __name__ == "__main__":
    main()
