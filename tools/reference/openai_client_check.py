#!/usr/bin/env python3
"""OpenAI's own Python client against a running `serve` with an instruction model: the chat and
completion calls parse, streaming gives the same text as a plain call, and a bad request raises
the client's BadRequestError with our message. Not part of the Swift tests (the client is a PyPI
package); run by hand in a throwaway venv:

    python3 -m venv /tmp/venv-openai && /tmp/venv-openai/bin/pip install openai
    .build/release/serve --model data/instruct-train --vocab data/instruct-raw/gpt2 --port 8080 &
    /tmp/venv-openai/bin/python tools/reference/openai_client_check.py --url http://127.0.0.1:8080/v1

Prints one line per check and exits 1 on the first mismatch.
"""
import argparse
import sys

import openai


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--token", default="none", help="the server's --token, if it has one")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.url, api_key=args.token)
    messages = [{"role": "user", "content": "Rewrite the sentence using a simile: The car is very fast."}]

    model = client.models.list().data[0].id
    print(f"models.list: {model}")
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=16)
    text = chat.choices[0].message.content
    print(f"chat: finish_reason={chat.choices[0].finish_reason} usage={chat.usage.completion_tokens}+{chat.usage.prompt_tokens} text={text!r}")
    streamed = "".join(chunk.choices[0].delta.content or ""
                       for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=16, stream=True))
    if streamed != text:
        sys.exit(f"streamed chat {streamed!r} differs from the plain answer {text!r}")
    print("chat stream: same text")
    completion = client.completions.create(model=model, prompt="The number is", max_tokens=8, temperature=0.8, seed=5)
    again = client.completions.create(model=model, prompt="The number is", max_tokens=8, temperature=0.8, seed=5)
    if completion.choices[0].text != again.choices[0].text:
        sys.exit("the same seed gave different samples")
    print(f"completions (seeded sampling, twice the same): {completion.choices[0].text!r}")
    try:
        client.chat.completions.create(model=model, messages=messages, extra_body={"mystery": 1})
        sys.exit("an unknown field was accepted")
    except openai.BadRequestError as error:
        print(f"bad request: {error.status_code} {error.body['message']}")
    print("ok")


if __name__ == "__main__":
    main()
