#!/usr/bin/env python3
"""Recomputes the tiny Llama's reference outputs (tests/data/expected.json) the way a user's
Hugging Face run makes them: the committed checkpoint (examples/models/tiny-llama) and adapters
(examples/adapters/) loaded with from_pretrained, which keeps the RoPE frequencies in float32.

The first references (../shared/fixtures/tiny-llama, tools/make_fixtures.py) were computed on a
model cast to bfloat16 and back, which also rounds RoPE's inv_freq buffer to bfloat16: no real
checkpoint loads that way, and the engine had to copy the rounding for Llama alone. This keeps
every case's prompt and prompt_ids, the tokenizer cases and the chat rendering, and recomputes
greedy_ids, margins, first_top10 and first_logits.

Usage: tools/remake_llama_references.py [REPO_ROOT]   (needs torch, transformers, peft)
"""
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import greedy  # noqa: E402  the same greedy loop as every other fixture


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    path = os.path.join(root, "tests/data/expected.json")
    exp = json.load(open(path))
    model = AutoModelForCausalLM.from_pretrained(os.path.join(root, "examples/models/tiny-llama"),
                                                 dtype=torch.float32, attn_implementation="eager")
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32
    names = exp["adapters"]
    adir = os.path.join(root, "examples/adapters")
    ref = PeftModel.from_pretrained(model, os.path.join(adir, names[0]), adapter_name=names[0])
    for n in names[1:]:
        ref.load_adapter(os.path.join(adir, n), adapter_name=n)
    ref = ref.float().eval()
    changed = 0
    for case in exp["cases"]:
        steps = len(case["greedy_ids"])
        adapter = case["adapter"]
        toks, margins, top, first = greedy(ref, case["prompt_ids"], steps,
                                           adapter_names=["__base__" if adapter is None else adapter])
        changed += toks != case["greedy_ids"]
        case.update({"greedy_ids": toks, "margins": [round(m, 5) for m in margins],
                     "min_margin": round(min(margins), 6), "first_top10": top,
                     "first_logits": [round(v, 5) for v in first.tolist()]})
    import transformers, peft
    exp["about"] = ("Reference outputs from Hugging Face transformers + peft, float32 math on the stored "
                    "weights loaded with from_pretrained (RoPE frequencies in float32). greedy_ids: 16 "
                    "(or 24) greedy tokens with EOS ignored; prompt_ids already include BOS.")
    exp["generator"] = {"script": "tools/remake_llama_references.py", "torch": torch.__version__,
                        "transformers": transformers.__version__, "peft": peft.__version__}
    with open(path, "w") as f:
        json.dump(exp, f, ensure_ascii=False, indent=1)
    print(f"{len(exp['cases'])} cases, greedy ids changed in {changed}, min margin "
          f"{min(c['min_margin'] for c in exp['cases'])}")


if __name__ == "__main__":
    main()
