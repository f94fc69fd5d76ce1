#!/usr/bin/env python3
"""Writes Tests/Fixtures/tokenizer/*.jsonl: texts with the ids tiktoken's `gpt2` encoding gives them.

The Swift tokenizer must reproduce every entry exactly. tiktoken is built OFFLINE from the two
local vocabulary files (no download, no cache) with tiktoken's own `gpt2` pattern, so the
reference is tiktoken's Rust BPE and regex engine, independent of our code.

Run from the repository root in the project venv (developers only, not CI):

    /work/venv/bin/python tools/reference/make_tokenizer_fixture.py [--assets ../shared/assets]

Files written (JSON lines, one object per line, UTF-8):
  encode.jsonl  {"set": ..., "mode": ..., "text": ..., "ids": [...]} or, for mode "default" on a
                text holding <|endoftext|>, {"error": "disallowed_special"} instead of ids.
                set: book | sms | instruction | fuzz
                mode: ordinary (encode_ordinary), default (encode()),
                      allow_eot (encode(allowed_special={"<|endoftext|>"}))
  decode.jsonl  {"ids": [...], "text": ...}: tiktoken's decode (errors="replace") of id sequences,
                many of which split UTF-8 characters.
  unicode_classes.json  {"letter": [[first, last], ...], "number": [...], "whitespace": [...]}:
                the code points that tiktoken's regex engine matches with \p{L}, \p{N} and \s,
                over all of Unicode (inclusive ranges). Its Unicode tables can be older than
                Swift's; the Swift pre-tokenizer must classify every scalar the same way.
"""

import argparse
import io
import json
import os
import random
import sys
import zipfile
from pathlib import Path

import pandas as pd
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str

ENDOFTEXT = "<|endoftext|>"
# sha256 of the published files (as in tiktoken_ext.openai_public.gpt2 and pipeline.yaml).
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
ALPACA_PROMPT = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")


def offline_gpt2(vocab_dir: Path) -> tiktoken.Encoding:
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local files directly, never a cache
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_dir / "vocab.bpe"),
        encoder_json_file=str(vocab_dir / "encoder.json"),
        vocab_bpe_hash=VOCAB_BPE_SHA256,
        encoder_json_hash=ENCODER_JSON_SHA256,
    )
    enc = tiktoken.Encoding(name="gpt2-offline", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                            special_tokens={ENDOFTEXT: 50256}, explicit_n_vocab=50257)
    # Guard against a tiktoken whose gpt2 definition differs from what we copied.
    assert enc.encode("Hello, world") == [15496, 11, 995]
    return enc


def book_texts():
    return [
        "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
        "Akwirw ier",
        "Hello, world. Is this-- a test?",
        "Every effort moves you",
        "Do you have time",
        "It's the last he painted, you know,",
        "Hello, I am",
    ]


def sms_texts(assets: Path):
    with zipfile.ZipFile(assets / "sms-spam-collection.zip") as archive:
        raw = archive.read("SMSSpamCollection")
    frame = pd.read_csv(io.BytesIO(raw), sep="\t", header=None, names=["Label", "Text"])
    return [str(text) for text in frame["Text"]]


def instruction_texts(assets: Path):
    entries = json.loads((assets / "instruction-data.json").read_text(encoding="utf-8"))
    texts = []
    for entry in entries:
        text = ALPACA_PROMPT + f"\n\n### Instruction:\n{entry['instruction']}"
        if entry["input"]:
            text += f"\n\n### Input:\n{entry['input']}"
        text += f"\n\n### Response:\n{entry['output']}"
        texts.append(text)
    return texts


# Hand-picked cases for every corner of the pre-tokenizer and the merges.
EDGE_CASES = [
    "", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", " \n", "\n ", " \n ", "\r\n", "a\r\nb", "a\r\n\r\nb",
    "\t", "\t\t", "a\tb", "a \tb", "a\t b", "a  b", "a   b", "a    b", "trailing ", "trailing   ",
    "   leading", " leading", "\n\nleading newlines", "x\n \ny", "x \n y", "end\n", "end \n", "end\n\n ",
    "a\u00a0b", "a\u00a0\u00a0b", "\u00a0", "a \u00a0b", "a\u2003b", "a\u2009b", "a\u202fb", "a\u205fb",
    "a\u3000b", "a\u2028b", "a\u2029b", "a\u0085b", "a\u1680b", "a\u180eb", "a\u200bb", "a\ufeffb",
    "a\x0bb", "a\x0cb", "a\x1cb", "a\x1db", "a\x1eb", "a\x1fb", "\x00", "a\x00b", "\x01\x02\x7f", "\x1b[31mred\x1b[0m",
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", "''", "''s", " 's", "'S", "'LL", "'Re", "'rE",
    "I'm", "I'M", "they're", "they'Re", "THEY'RE", "we'll've", "don't", "DON'T", "it's", "It'S",
    "ma'am", "rock 'n' roll", "'twas", "o'clock", "y'all'd've", "a'", "'a", "x'lly", "' s",
    "\u2019s", "it\u2019s",
    "Hello, world!", "Hello,world", "hello  world", "HELLO WORLD", "CamelCaseWord", "snake_case_word",
    "abc123def", "123abc", " 123", "  123", "1,000,000.00", "3.14159", "-42", "+1e-10", "0x1F",
    "\u0663\u0664\u0665", "\u0967\u0968\u0969", "\uff11\uff12", "\u00bd", "\u2162", "\u00b2", "x\u00b2",
    "\u2460\u2461", "\U0001d7ce\U0001d7cf", "12\u0663", "a1\u0967b",
    "caf\u00e9", "cafe\u0301", "e\u0301\u0301\u0301", "\u0301", " \u0301", "a \u0301b", "\u00c5", "A\u030a",
    "na\u00efve r\u00e9sum\u00e9", "\u1e9b\u0323", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587 \u6d4b\u8bd5", "\ud55c\uad6d\uc5b4", "\u0645\u0631\u062d\u0628\u0627",
    "\u05e9\u05dc\u05d5\u05dd", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440", "\u0393\u03b5\u03b9\u03ac",
    "\U0001f44d", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f1fa\U0001f1f8", "\u2764\ufe0f", "I \u2764\ufe0f NY", " \U0001f600", "\U0001f600\U0001f600",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "a\U0001f600b", "\U00020000\U0002a6d6", "\U000e0041", "\U000f0000",
    # Letters new in Unicode 17.0, unassigned in tiktoken's (16.0) regex tables.
    "x\ua7ce\ua7cfy", " \U00010940\U00010941", "\U00010940\u0301", "a\U00011db0b", "\u088f\u0c5c",
    "\ufffd", "\uffff", "\ue000", "\u2603 \u00a9 \u00ae \u2122",
    "!!!", " !!!", "?!", " ...", "...", "\u2026", "--", " -- ", "<html>", "</p>", "{\"k\": [1, 2]}",
    "a_b", "$100", "#hashtag", "@user", "http://example.com/path?q=1&x=2", "user@example.com",
    ENDOFTEXT, "a" + ENDOFTEXT + "b", "  " + ENDOFTEXT + "  ", ENDOFTEXT + ENDOFTEXT, " " + ENDOFTEXT,
    ENDOFTEXT + "\n", "<|endoftext", "endoftext|>", "<|endoftext|", "<| endoftext |>", "<|ENDOFTEXT|>",
    "<|startoftext|>", "x<|endoftext|>y<|endoftext|>z",
    " " * 300 + "word", " " * 129, " " * 1000, "\n" * 200, "\t" * 150 + "x", " \n" * 100,
    "a" * 1000, "ab" * 300, "!" * 500, "1234567890" * 50, "\u00e9" * 200, "\u65e5" * 300,
    "\U0001f600" * 100, "x" + " " * 200 + "y", "hello" * 100, " hello" * 100,
    "".join(chr(c) for c in range(0x20, 0x7f)), "".join(chr(c) for c in range(0xa0, 0x100)),
    "".join(chr(c) for c in range(0x00, 0x20)),
]

# Pools for random strings: words and separators that exercise the regex's branches.
WORDS = ["the", "The", "THE", "a", "hello", "world", "don't", "I'M", "they'Re", "we'll", "o'clock",
         "x", "Zebra", "naïve", "café", "Ärger", "straße", "日本", "中文", "한국어", "Привет", "γειά",
         "مرحبا", "שלום", "नमस्ते", "สวัสดี", "ok", "OK", "email", "C++", "e=mc²", "ﬁ", "ǅ", "ʰ", "ᵃ"]
SEPARATORS = [" ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \t", "\u00a0", "\u3000", "\u2003", "\u2028",
              "\u0085", "\x0b", "\x0c", "\x1c", "\u200b", "", "", "", " \n ", "\n \n"]
PUNCT = [",", ".", "!", "?", "'", "\"", "-", "--", "(", ")", "...", "…", "“", "”", "’", ":", ";", "/",
         "\\", "@", "#", "$", "%", "^", "&", "*", "_", "=", "+", "<", ">", "|", "~", "`", "{", "}", "[", "]"]
NUMBERS = ["0", "7", "42", "123", "2024", "3.14", "1,000", "٣", "١٢٣", "१२३", "½", "Ⅻ", "²", "①", "１２"]
EMOJI = ["😀", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "❤️", "🏳️‍🌈", "🤖", "✨", "☃"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0323", "\u20dd", "\u200d", "\ufe0f", "\u093f"]


def random_code_point(rng: random.Random) -> str:
    while True:
        # Mostly the BMP (most scripts), sometimes the upper planes, never surrogates (a Swift
        # String cannot hold them).
        roll = rng.random()
        if roll < 0.6:
            value = rng.randrange(0x20, 0x3000)
        elif roll < 0.85:
            value = rng.randrange(0x3000, 0x10000)
        else:
            value = rng.randrange(0x10000, 0x110000)
        if not 0xD800 <= value <= 0xDFFF:
            return chr(value)


# The pools a random text's parts are drawn from, each up to its bound on one roll in [0, 1):
# 35% words, 25% separators, 12% punctuation, 10% numbers, 6% emoji, 4% combining marks.
PART_POOLS = [(0.35, WORDS), (0.6, SEPARATORS), (0.72, PUNCT), (0.82, NUMBERS), (0.88, EMOJI), (0.92, COMBINING)]


def random_part(rng: random.Random) -> str:
    """One part of a random text: a pick from a PART_POOLS pool, else (2%) <|endoftext|>, else (6%)
    a random code point."""
    roll = rng.random()
    for bound, pool in PART_POOLS:
        if roll < bound:
            return rng.choice(pool)
    if roll < 0.94:
        return ENDOFTEXT
    return random_code_point(rng)


def random_texts(rng: random.Random, count: int):
    texts = []
    for index in range(count):
        kind = index % 4
        if kind == 3:
            # Random code points anywhere in Unicode: byte-level strings with every UTF-8 length.
            texts.append("".join(random_code_point(rng) for _ in range(rng.randrange(1, 24))))
            continue
        texts.append("".join(random_part(rng) for _ in range(rng.randrange(1, 16))))
    return texts


def random_id_sequences(rng: random.Random, enc: tiktoken.Encoding, texts):
    """Id sequences whose bytes are often not valid UTF-8: slices of real encodings (which cut
    characters apart), lone byte tokens (continuation bytes, lead bytes), and random ids."""
    sequences = [[id] for id in range(188, 256)]  # the non-printable single bytes incl. 0x80-0xA0
    sequences += [[enc.encode_single_token(bytes([b]))] for b in (0x80, 0xBF, 0xC0, 0xC1, 0xC3, 0xE2, 0xF0, 0xF4, 0xF5, 0xFF)]
    for text in texts:
        ids = enc.encode_ordinary(text)
        if len(ids) >= 2:
            start = rng.randrange(0, len(ids))
            sequences.append(ids[start:start + rng.randrange(1, 6)])
    for _ in range(300):
        sequences.append([rng.randrange(0, 50257) for _ in range(rng.randrange(1, 8))])
    for _ in range(200):
        sequences.append([rng.randrange(128, 256) for _ in range(rng.randrange(1, 6))])
    return sequences


def regex_classes():
    """Asks tiktoken's own regex engine which code points each class matches: an Encoding whose
    pattern is just the class and whose tokens are the 256 bytes returns the bytes of the
    matched characters (encode_ordinary drops text the pattern does not match)."""
    byte_ranks = {bytes([b]): b for b in range(256)}
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    classes = {}
    for name, pattern in [("letter", r"\p{L}"), ("number", r"\p{N}"), ("whitespace", r"\s")]:
        probe = tiktoken.Encoding(name=f"probe-{name}", pat_str=pattern, mergeable_ranks=byte_ranks,
                                  special_tokens={})
        matched = sorted(ord(ch) for ch in bytes(probe.encode_ordinary(everything)).decode("utf-8"))
        ranges = []
        for value in matched:
            if ranges and ranges[-1][1] == value - 1:
                ranges[-1][1] = value
            else:
                ranges.append([value, value])
        classes[name] = ranges
    return classes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parents[2]
    parser.add_argument("--assets", type=Path, default=root.parent / "shared" / "assets")
    parser.add_argument("--out", type=Path, default=root / "Tests" / "Fixtures" / "tokenizer")
    parser.add_argument("--fuzz", type=int, default=3000, help="number of random fuzz strings")
    parser.add_argument("--seed", type=int, default=20240607)
    args = parser.parse_args()

    enc = offline_gpt2(args.assets / "gpt2")
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    entries = []

    def add(text_set, text, modes):
        for mode in modes:
            entry = {"set": text_set, "mode": mode, "text": text}
            if mode == "ordinary":
                entry["ids"] = enc.encode_ordinary(text)
            elif mode == "allow_eot":
                entry["ids"] = enc.encode(text, allowed_special={ENDOFTEXT})
            else:
                try:
                    entry["ids"] = enc.encode(text)
                except ValueError:
                    entry["error"] = "disallowed_special"
            entries.append(entry)

    for text in book_texts():
        add("book", text, ["allow_eot", "ordinary", "default"])
    for text in sms_texts(args.assets):
        add("sms", text, ["default"])
    for text in instruction_texts(args.assets):
        add("instruction", text, ["default"])
    for text in EDGE_CASES:
        add("fuzz", text, ["ordinary", "allow_eot"] if ENDOFTEXT in text else ["ordinary"])
    fuzz = random_texts(rng, args.fuzz)
    for text in fuzz:
        add("fuzz", text, ["ordinary", "allow_eot", "default"] if ENDOFTEXT in text else ["ordinary"])

    with open(args.out / "encode.jsonl", "w", encoding="utf-8", newline="\n") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")

    sequences = random_id_sequences(rng, enc, EDGE_CASES + fuzz[:600])
    with open(args.out / "decode.jsonl", "w", encoding="utf-8", newline="\n") as handle:
        for ids in sequences:
            handle.write(json.dumps({"ids": ids, "text": enc.decode(ids)}, ensure_ascii=False,
                                    separators=(",", ":")) + "\n")

    with open(args.out / "unicode_classes.json", "w", encoding="utf-8", newline="\n") as handle:
        json.dump(regex_classes(), handle, separators=(",", ":"))
        handle.write("\n")

    counts = {}
    for entry in entries:
        counts[entry["set"]] = counts.get(entry["set"], 0) + 1
    tokens = sum(len(entry.get("ids", [])) for entry in entries)
    print(f"encode.jsonl: {len(entries)} entries {counts}, {tokens} tokens; decode.jsonl: {len(sequences)} entries",
          file=sys.stderr)


if __name__ == "__main__":
    main()
