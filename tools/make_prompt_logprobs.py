#!/usr/bin/env python3
"""Prompt log-probabilities of the tiny Llama from Hugging Face (tests/data/prompt_logprobs.json):
OpenAI's `echo` with `logprobs` reports, for every prompt token after the first, its
log-probability given the tokens before it and the top entries. This takes some cases of
tests/data/expected.json (short and long prompts, base model and adapters), runs the committed
checkpoint (examples/models/tiny-llama) and adapters (examples/adapters/) once over each prompt in
float32 as tools/remake_llama_references.py loads them, and stores the log-softmax of every prompt
position's logits at the next prompt token, and the top TOP ids with their log-probabilities.

Usage: tools/make_prompt_logprobs.py [REPO_ROOT]   (needs torch, transformers, peft)
"""
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

CASES = [0, 1, 20, 24, 32, 33]  # indices into expected.json's cases: 6-9 tokens, and two of 301
TOP = 5


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    exp = json.load(open(os.path.join(root, "tests/data/expected.json")))
    model = AutoModelForCausalLM.from_pretrained(os.path.join(root, "examples/models/tiny-llama"),
                                                 dtype=torch.float32, attn_implementation="eager")
    names = exp["adapters"]
    adir = os.path.join(root, "examples/adapters")
    ref = PeftModel.from_pretrained(model, os.path.join(adir, names[0]), adapter_name=names[0])
    for n in names[1:]:
        ref.load_adapter(os.path.join(adir, n), adapter_name=n)
    ref = ref.float().eval()
    out = []
    with torch.no_grad():
        for i in CASES:
            case = exp["cases"][i]
            ids = case["prompt_ids"]
            adapter = case["adapter"]
            logits = ref(input_ids=torch.tensor([ids]),
                         adapter_names=["__base__" if adapter is None else adapter]).logits[0].float()
            lp = torch.log_softmax(logits.double(), dim=-1)
            top = torch.topk(lp[:-1], TOP, dim=-1)
            out.append({
                "case": i, "adapter": adapter, "prompt_ids": ids,
                # Entry p is prompt token p + 1 given tokens 0..p.
                "logprobs": [round(float(lp[p, ids[p + 1]]), 6) for p in range(len(ids) - 1)],
                "top_ids": top.indices.tolist(),
                "top_logprobs": [[round(float(v), 6) for v in row] for row in top.values.tolist()],
            })
    import transformers, peft
    doc = {"about": "Prompt log-probabilities (log-softmax of float32 logits at the next prompt token, "
                    f"and the top {TOP}) of cases of tests/data/expected.json, from Hugging Face "
                    "transformers + peft.",
           "generator": {"script": "tools/make_prompt_logprobs.py", "torch": torch.__version__,
                         "transformers": transformers.__version__, "peft": peft.__version__},
           "top": TOP, "cases": out}
    path = os.path.join(root, "tests/data/prompt_logprobs.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"{len(out)} cases written to {path}")


if __name__ == "__main__":
    main()
