#!/usr/bin/env python3
"""Cross-checks committed fixtures against a second Hugging Face path: transformers' own generate()
(greedy, EOS off) on the base model and on each adapter loaded alone with PeftModel.from_pretrained,
where make_fixtures.py used a manual KV-cache loop with every adapter loaded and `adapter_names`.

Usage: check_fixtures.py tests/data/models NAME...   (checks the first 6 short cases and the long ones)
"""
import json, sys, warnings
import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig
from peft import PeftModel


def check(root):
    exp = json.load(open(f"{root}/expected.json"))
    base = AutoModelForCausalLM.from_pretrained(f"{root}/model", dtype=torch.float32, attn_implementation="eager").eval()
    base.generation_config.eos_token_id = None  # the references ignore EOS
    ok = n = 0
    for c in exp["cases"]:
        if c["prompt"] is not None and n >= 6:
            continue
        model = base
        if c["adapter"]:
            model = PeftModel.from_pretrained(base, f"{root}/adapters/{c['adapter']}").eval()
        gc = GenerationConfig(max_new_tokens=len(c["greedy_ids"]), do_sample=False, pad_token_id=0, eos_token_id=None)
        ids = torch.tensor([c["prompt_ids"]])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gc)
        got = out[0, ids.shape[1]:].tolist()
        n += 1
        ok += got == c["greedy_ids"]
        if got != c["greedy_ids"]:
            print("  mismatch:", c["adapter"], c["prompt"], got, c["greedy_ids"])
        if c["adapter"]:
            base = model.unload()
    print(f"{root}: generate() agrees on {ok}/{n} cases")
    return ok == n


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    results = [check(f"{sys.argv[1]}/{name}") for name in sys.argv[2:]]
    sys.exit(0 if all(results) else 1)
