#!/usr/bin/env python3
"""Turns the book's Alpaca instruction data into a chat JSONL file, the demo input of
pipelines/instruct-your-data.yaml (docs/instruct-data.md, "Your own data").

Each output line is one conversation:

    {"messages": [{"role": "system", "content": SYSTEM},
                  {"role": "user", "content": instruction [+ "\\n\\n" + input]},
                  {"role": "assistant", "content": output}]}

Every `--pair-every`-th conversation (default 4: conversations 3, 7, 11, ...) takes two
consecutive entries instead of one and becomes a two-turn chat (system, user, assistant, user,
assistant). The two tasks are unrelated, as when a user asks two things in a row; the point is
to exercise multi-turn rendering and loss masking (both assistant turns count, the second user
turn does not) and the evaluation of the last turn given the first, on real text. With the
book's 1,100 entries that gives 880 conversations, 220 of them two-turn. `--pair-every 0`
keeps every entry single-turn.

Only the standard library; deterministic (no randomness). The output is written to a temporary
file and renamed into place, so a failed run leaves no half-written file.

    python3 tools/make_chat_jsonl.py --input ../shared/assets/instruction-data.json --out data/chat.jsonl
"""
import argparse
import json
import os
import sys
import tempfile

SYSTEM = "You are a helpful assistant. Answer the user's request accurately and concisely."


def user_text(entry):
    """The instruction, and the input after a blank line when there is one (the way
    `prepare instruct` turns an Alpaca entry into a user message for ChatML)."""
    return entry["instruction"] + ("\n\n" + entry["input"] if entry.get("input") else "")


def conversations(entries, system, pair_every):
    """One conversation per entry, except that every pair_every-th one takes two entries."""
    i = 0
    result = []
    while i < len(entries):
        take = 2 if pair_every > 0 and len(result) % pair_every == pair_every - 1 and i + 1 < len(entries) else 1
        messages = [{"role": "system", "content": system}] if system else []
        for entry in entries[i:i + take]:
            messages.append({"role": "user", "content": user_text(entry)})
            messages.append({"role": "assistant", "content": entry["output"]})
        result.append({"messages": messages})
        i += take
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="the book's instruction-data.json (a JSON list of instruction/input/output)")
    parser.add_argument("--out", required=True, help="the chat JSONL file to write")
    parser.add_argument("--system", default=SYSTEM, help="system message of every conversation (empty: none)")
    parser.add_argument("--pair-every", type=int, default=4, help="every N-th conversation is two entries (0: none)")
    args = parser.parse_args()
    if args.pair_every < 0:
        sys.exit("error: --pair-every must be 0 or more")
    with open(args.input, encoding="utf-8") as f:
        entries = json.load(f)
    for n, entry in enumerate(entries):
        missing = [k for k in ("instruction", "output") if not isinstance(entry.get(k), str)]
        if missing:
            sys.exit(f"error: {args.input}: entry {n} has no string {', '.join(missing)}")
    chats = conversations(entries, args.system, args.pair_every)
    directory = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".chat-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for chat in chats:
                f.write(json.dumps(chat, ensure_ascii=False) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    turns = sum(1 for c in chats if sum(m["role"] == "assistant" for m in c["messages"]) > 1)
    print(f"wrote {args.out}: {len(chats)} conversations from {len(entries)} entries ({turns} two-turn)")


if __name__ == "__main__":
    main()
