#!/usr/bin/env python3
"""The official `openai` Python client against a real `quilt serve` (the bundled demo model).

usage: openai_client_test.py QUILT_BINARY
Exits 77 (CTest's skip code) with a message when the `openai` package is not installed.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import openai
except ImportError:
    print("SKIP: the openai Python package is not installed (pip install openai)")
    sys.exit(77)

ADMIN_KEY = "admin-openai-client-test-0123456789"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def admin(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {ADMIN_KEY}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, data_dir):
    port = free_port()
    env = dict(os.environ, QUILT_ADMIN_KEY=ADMIN_KEY)
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    sys.exit("quilt serve did not become ready:\n" + (proc.stdout.read() if proc.stdout else ""))


def run(client, model):
    models = client.models.list()
    ids = [m.id for m in models.data]
    check(model in ids, f"models.list has the base model {model}")
    check(client.models.retrieve(model).id == model, "models.retrieve(base model)")
    try:
        client.models.retrieve("no-such-model")
        check(False, "models.retrieve(unknown) raises NotFoundError")
    except openai.NotFoundError:
        check(True, "models.retrieve(unknown) raises NotFoundError")

    c = client.completions.create(model=model, prompt="The quick brown fox", max_tokens=5,
                                  temperature=0, extra_body={"ignore_eos": True})
    check(c.choices[0].finish_reason == "length" and c.usage.completion_tokens == 5,
          "completions.create: 5 tokens, finish length")

    forced = client.completions.create(model=model, prompt="The quick brown fox", max_tokens=4,
                                       temperature=0, logit_bias={"123": 100},
                                       extra_body={"ignore_eos": True, "return_token_ids": True})
    check((forced.choices[0].model_extra or {}).get("token_ids") == [123] * 4,
          "logit_bias forces token 123 (token_ids via return_token_ids)")

    echoed = client.completions.create(model=model, prompt="The quick brown fox", max_tokens=3,
                                       temperature=0, echo=True, logprobs=2,
                                       extra_body={"ignore_eos": True})
    lp = echoed.choices[0].logprobs
    n_prompt = echoed.usage.prompt_tokens
    check(echoed.choices[0].text.startswith("The quick brown fox") and len(lp.tokens) == n_prompt + 3
          and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
          and all(isinstance(v, float) for v in lp.token_logprobs[1:])
          and all(len(t) == 2 for t in lp.top_logprobs[1:]),
          "completions.create(echo=True, logprobs=2): prompt then generated tokens, the first null")
    streamed = list(client.completions.create(model=model, prompt="The quick brown fox", max_tokens=3,
                                              temperature=0, echo=True, logprobs=2, stream=True,
                                              extra_body={"ignore_eos": True}))
    check(streamed[0].choices[0].text == "The quick brown fox"
          and len(streamed[0].choices[0].logprobs.tokens) == n_prompt
          and "".join(ch.choices[0].text for ch in streamed if ch.choices) == echoed.choices[0].text,
          "streamed echo with logprobs: the prompt's chunk first, then the same text")

    chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=4, temperature=0, n=2)
    check(len(chat.choices) == 2 and all(ch.message.role == "assistant" for ch in chat.choices),
          "chat.completions.create with n=2")

    # The SDK's stream helper needs the role on every choice's first delta; it refuses to assemble
    # a completion cut by max_tokens, so EOS (<|eot_id|>, id 4 in the demo model) is forced.
    with client.chat.completions.stream(model=model, messages=[{"role": "user", "content": "hi"}],
                                        max_tokens=4, temperature=0, n=2,
                                        logit_bias={"4": 100}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    check(len(final.choices) == 2, "chat.completions.stream with n=2 assembles both choices")

    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                       tools=[{"type": "function",
                                               "function": {"name": "f", "parameters": {}}}])
        check(False, "tools are refused")
    except openai.BadRequestError as e:
        check(e.body is not None and e.body.get("param") == "tools", "tools: 400 naming tools")

    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                       response_format={"type": "json_object"}, stream=True)
        check(False, "response_format json_object is refused before the stream")
    except openai.BadRequestError as e:
        check(e.body is not None and e.body.get("param") == "response_format",
              "response_format: 400 before any stream starts")


def main():
    binary = sys.argv[1]
    data_dir = tempfile.mkdtemp(prefix="quilt-openai-client-")
    proc, port = start(binary, data_dir)
    try:
        tenant = admin(port, "POST", "/admin/v1/tenants", {"name": "sdk"})
        key = admin(port, "POST", f"/admin/v1/tenants/{tenant['id']}/keys")["key"]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        model = client.models.list().data[0].id
        run(client, model)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"openai {openai.__version__}: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
