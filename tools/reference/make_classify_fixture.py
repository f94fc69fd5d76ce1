#!/usr/bin/env python3
"""Reference fixture for `prepare classification` on your own files and for `evaluate`'s metrics.

Run by a developer (pandas, scikit-learn), not by CI:

    /tmp/refvenv/bin/python tools/reference/make_classify_fixture.py --out Tests/Fixtures/dataprep

Writes classify_cases.json:
  csv_cases      small CSV/TSV inputs (base64) and the label and text columns pandas.read_csv
                 (header=0, sep="," or "\t") reads from them: quoted separators and newlines, a
                 UTF-8 BOM, CRLF line ends, doubled quotes, integer labels
  metric_cases   true and predicted class ids and scikit-learn's confusion_matrix and
                 precision_recall_fscore_support (per class, macro, weighted; zero_division=0)
"""
import argparse
import base64
import io
import json
import os

import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

CSV_CASES = [
    ("quoted_commas_newlines", ",", "label,text\npos,\"a, b\"\nneg,\"line one\nline two\"\npos,\"say \"\"hi\"\"\"\n", "label", "text"),
    ("bom_crlf", ",", "\ufefftext,category\r\nfirst,x\r\nsecond,y\r\nthird,z\r\n", "category", "text"),
    ("integer_labels", ",", "id,review,stars\n1,good,5\n2,bad,1\n3,\"ok, fine\",3\n", "stars", "review"),
    ("tsv_header", "\t", "sentence\tlabel\nhello there\tgreet\n\"tab\tinside\"\tother\n", "label", "sentence"),
]


def csv_case(name, sep, text, label, column):
    frame = pd.read_csv(io.BytesIO(text.encode("utf-8")), sep=sep, header=0)
    return {
        "name": name, "sep": sep, "label_column": label, "text_column": column,
        "input_base64": base64.b64encode(text.encode("utf-8")).decode(),
        "labels": [str(v) for v in frame[label].tolist()],
        "texts": frame[column].tolist(),
    }


METRIC_CASES = [
    ("three_classes", 3, [0, 0, 1, 1, 2, 2, 2, 0, 1, 2], [0, 1, 1, 1, 2, 0, 2, 0, 2, 2]),
    ("never_predicted", 3, [0, 1, 2, 2, 1, 0], [0, 0, 0, 0, 1, 1]),
    ("binary", 2, [0, 1, 1, 0, 1], [0, 1, 0, 0, 1]),
]


def metric_case(name, k, y, p):
    labels = list(range(k))
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=labels, average=None, zero_division=0)
    out = {"name": name, "num_classes": k, "labels": y, "predicted": p,
           "confusion": confusion_matrix(y, p, labels=labels).tolist(),
           "precision": prec.tolist(), "recall": rec.tolist(), "f1": f1.tolist(), "support": support.tolist()}
    for avg in ("macro", "weighted"):
        a = precision_recall_fscore_support(y, p, labels=labels, average=avg, zero_division=0)
        out[avg] = {"precision": a[0], "recall": a[1], "f1": a[2]}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fixture = {"csv_cases": [csv_case(*c) for c in CSV_CASES], "metric_cases": [metric_case(*c) for c in METRIC_CASES]}
    with open(os.path.join(args.out, "classify_cases.json"), "w") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
