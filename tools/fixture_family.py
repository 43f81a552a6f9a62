"""Builds one fixture of a model family (Qwen2/Qwen3/Mistral/Gemma 2/Gemma 3/Phi-3) for make_fixtures.py:
a tiny random checkpoint made by Hugging Face's own model class, PEFT LoRA adapters, and the reference
outputs of transformers + peft, computed in float32 on the stored (bfloat16) weights with eager
attention, from the checkpoint and adapters as they were written to disk.
"""
import copy, json, os, random, shutil
import torch
import tokenizers, transformers, peft
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import LoraConfig, get_peft_model, PeftModel

import fixture_tokenizers
from fixture_specs import SPECS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# gemma_norm: RMSNorm weights are offsets from 1 (the norm multiplies by 1 + w).
ARCHS = {
    "qwen2": dict(config=transformers.Qwen2Config, model=transformers.Qwen2ForCausalLM, gemma_norm=False),
    "qwen3": dict(config=transformers.Qwen3Config, model=transformers.Qwen3ForCausalLM, gemma_norm=False),
    "mistral": dict(config=transformers.MistralConfig, model=transformers.MistralForCausalLM, gemma_norm=False),
    "gemma2": dict(config=transformers.Gemma2Config, model=transformers.Gemma2ForCausalLM, gemma_norm=True),
    "gemma3": dict(config=transformers.Gemma3TextConfig, model=transformers.Gemma3ForCausalLM, gemma_norm=True),
    "phi3": dict(config=transformers.Phi3Config, model=transformers.Phi3ForCausalLM, gemma_norm=False),
}

PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")


def chat_template(name):
    """The family's real chat template, from the copies under tests/data."""
    data = os.path.join(REPO, "tests", "data")
    if name == "qwen2_5":
        return open(os.path.join(data, "chat_templates", "qwen2_5.jinja")).read()
    if name == "mistral_v01":
        return open(os.path.join(data, "real-tokenizers", "mistral_v01", "chat_template.jinja")).read()
    if name in ("qwen3", "gemma"):
        folder = "qwen3" if name == "qwen3" else "gemma3"
        return json.load(open(os.path.join(data, "real-tokenizers", folder, "tokenizer_config.json")))["chat_template"]
    if name == "phi3":
        return PHI3_TEMPLATE
    raise ValueError("unknown chat template " + name)


def set_seed(s):
    random.seed(s); torch.manual_seed(s)


@torch.no_grad()
def greedy(model, ids, steps, adapter_names=None):
    """Manual greedy loop with the KV cache: (token ids, per-step top1-top2 margins, first-step top 10, first logits)."""
    kw = {} if adapter_names is None else {"adapter_names": adapter_names}
    out = model(input_ids=torch.tensor([ids]), use_cache=True, **kw)
    past = out.past_key_values
    logits = out.logits[0, -1].float()
    first = logits.clone()
    toks, margins = [], []
    for _ in range(steps):
        top2 = torch.topk(logits, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        t = int(top2.indices[0]); toks.append(t)
        out = model(input_ids=torch.tensor([[t]]), past_key_values=past, use_cache=True, **kw)
        past = out.past_key_values
        logits = out.logits[0, -1].float()
    tv = torch.topk(first, 10)
    return toks, margins, {"ids": tv.indices.tolist(), "logits": [round(v, 6) for v in tv.values.tolist()]}, first


def perturb(model, arch, tied):
    """Norm weights away from their neutral value (a missing norm is caught), q/k/v biases non-zero, and
    peaky logits (clear greedy margins): lm_head x4 when untied, else a final norm weight ~ 4 N(0, 1)."""
    gemma = ARCHS[arch]["gemma_norm"]
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                noise = 0.3 * torch.randn_like(p)
                p.copy_(noise if gemma else 1.0 + noise)
            elif n.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
        final = model.model.norm.weight
        if tied:  # random signs too: else h . E[t] favours the input token and greedy output repeats it
            scale = 4.0 * torch.randn_like(final)
            final.copy_(scale - 1.0 if gemma else scale)
        else:
            model.lm_head.weight.mul_(4.0)


def legacy_config(c, spec):
    """Rewrites a transformers-5 config.json dict the way most checkpoints on the Hub carry it."""
    c = copy.deepcopy(c)
    c["torch_dtype"] = c.pop("dtype")
    rp = c.pop("rope_parameters")
    arch = spec["arch"]
    if arch == "gemma3":
        full, local = rp["full_attention"], rp["sliding_attention"]
        c["rope_theta"] = full["rope_theta"]
        c["rope_local_base_freq"] = local["rope_theta"]
        c["rope_scaling"] = None if full["rope_type"] == "default" else \
            {"rope_type": full["rope_type"], "factor": full["factor"]}
        c.pop("layer_types")
        c.pop("_sliding_window_pattern", None)  # transformers 5.24 leaks this private default (6) into config.json
    else:
        c["rope_theta"] = rp.pop("rope_theta")
        rp.pop("partial_rotary_factor", None)
        kind = rp.pop("rope_type")
        if kind == "default":
            c["rope_scaling"] = None
        elif kind == "longrope":  # Phi-3's layout: original_max_position_embeddings at top level
            c["original_max_position_embeddings"] = rp.pop("original_max_position_embeddings")
            c["rope_scaling"] = {"type": "longrope", "short_factor": rp["short_factor"], "long_factor": rp["long_factor"]}
        else:
            raise ValueError("no legacy layout for rope type " + kind)
        if arch in ("qwen2", "gemma2"):
            c.pop("layer_types")
    c.update(spec.get("legacy_extra", {}))
    return c


def load_reference(mdir, **overrides):
    m = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32, attn_implementation="eager", **overrides)
    return m.eval()


def check_layouts_agree(mdir, v5_config, probe):
    """The rewritten config.json must mean exactly what transformers wrote: same logits from both."""
    other = mdir + ".v5"
    shutil.copytree(mdir, other)
    with open(os.path.join(other, "config.json"), "w") as f:
        json.dump(v5_config, f, indent=2)
    ma, mb = load_reference(mdir), load_reference(other)
    with torch.no_grad():
        a = ma(input_ids=torch.tensor([probe])).logits
        b = mb(input_ids=torch.tensor([probe])).logits
    shutil.rmtree(other)
    if not torch.equal(a, b):
        da, db = ma.config.to_dict(), mb.config.to_dict()
        print({k: (da.get(k), db.get(k)) for k in set(da) | set(db) if da.get(k) != db.get(k)})
        raise AssertionError("the legacy config.json changes the model: %g" % float((a - b).abs().max()))


def tokenizer_matches_file(tok, mdir, texts):
    """transformers' tokenizer must give what tokenizer.json alone gives (the C++ side reads only that)."""
    raw = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
    for t in texts:
        for special in (False, True):
            a = tok(t, add_special_tokens=special)["input_ids"]
            b = raw.encode(t, add_special_tokens=special).ids
            assert a == b, (t, special, a, b)


def make_case(ref, ids, steps, adapter, prompt):
    names = ["__base__"] if adapter is None else [adapter]
    toks, margins, top, first = greedy(ref, ids, steps, adapter_names=names)
    return {"adapter": adapter, "prompt": prompt, "prompt_ids": ids, "greedy_ids": toks,
            "margins": [round(m, 5) for m in margins], "min_margin": round(min(margins), 6),
            "first_top10": top, "first_logits": [round(v, 5) for v in first.tolist()]}


def run_ablations(spec, mdir, long_ids, base_first, base_greedy):
    """Every ablation must move the first-step logits of the long prompt (and, where asked, its greedy
    continuation): the feature it removes really acts on this fixture."""
    notes = []
    for ab in spec["ablations"]:
        m = load_reference(mdir, **ab["config"])
        toks, _, _, first = greedy(m, long_ids, 24)
        diff = float((first - base_first).abs().max())
        changed = toks != base_greedy
        first_change = next((i for i, (a, b) in enumerate(zip(toks, base_greedy)) if a != b), None)
        print(f"  ablation '{ab['what']}': max |dlogit| {diff:.4f}, greedy changed: {changed} (first at step {first_change})")
        assert diff > 1e-2, "ablation does not change the logits: " + ab["what"]
        if ab.get("must_change_greedy"):
            assert changed, "ablation does not change the greedy continuation: " + ab["what"]
        notes.append({"what": ab["what"], "max_abs_first_logit_change": round(diff, 4),
                      "greedy_changes": changed, "first_changed_step": first_change})
    return notes


def build_family(outdir, name, which):
    spec = SPECS[which]
    arch = ARCHS[spec["arch"]]
    root = os.path.join(outdir, name)
    shutil.rmtree(root, ignore_errors=True)
    mdir = os.path.join(root, "model"); os.makedirs(mdir)
    set_seed(spec["seed"])
    special = fixture_tokenizers.make_tokenizer(spec["family"], spec["vocab"], spec["seed"], mdir,
                                                chat_template(spec["template"]))
    tok = AutoTokenizer.from_pretrained(mdir)
    V = len(tok)
    bos_id = tok.convert_tokens_to_ids(special["bos"]) if special["bos"] else None
    eos_id = tok.convert_tokens_to_ids(special["eos"])
    ccfg = dict(spec["config"])
    tied = ccfg["tie_word_embeddings"]
    cfg = arch["config"](vocab_size=V, initializer_range=0.08, bos_token_id=bos_id, eos_token_id=eos_id,
                         pad_token_id=None, max_position_embeddings=ccfg.pop("max_position_embeddings", 512), **ccfg)
    model = arch["model"](cfg)
    perturb(model, spec["arch"], tied)
    model = model.to(torch.bfloat16)
    model.save_pretrained(mdir, safe_serialization=True)
    cpath = os.path.join(mdir, "config.json")
    v5_config = json.load(open(cpath))
    probe = [i % V for i in range(7, 7 + 40 * 13, 13)]
    if spec["layout"] == "legacy":
        with open(cpath, "w") as f:
            json.dump(legacy_config(v5_config, spec), f, indent=2)
        check_layouts_agree(mdir, v5_config, probe)
    base = load_reference(mdir)  # what Hugging Face computes from the files on disk

    adir = os.path.join(root, "adapters"); os.makedirs(adir)
    for a in spec["adapters"]:
        set_seed(spec["seed"] + len(a["id"]))
        lc = LoraConfig(r=a["r"], lora_alpha=a["alpha"], target_modules=a["targets"], lora_dropout=0.0,
                        bias="none", use_rslora=a.get("rslora", False), init_lora_weights=False,
                        layers_to_transform=a.get("layers"), task_type="CAUSAL_LM")
        pm = get_peft_model(copy.deepcopy(base), lc)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_" in n:
                    p.copy_(torch.randn_like(p) * (0.15 if "lora_A" in n else 0.25))
        pm = pm.to(getattr(torch, a["dtype"]))
        pm.save_pretrained(os.path.join(adir, a["id"]), safe_serialization=True)
        # Deterministic and free of this machine's paths: PEFT writes target_modules from a set and
        # the base model's temporary directory.
        apath = os.path.join(adir, a["id"], "adapter_config.json")
        acfg = json.load(open(apath))
        acfg["base_model_name_or_path"] = None
        acfg["target_modules"] = sorted(acfg["target_modules"])
        with open(apath, "w") as f:
            json.dump(acfg, f, indent=2, sort_keys=True)
        readme = os.path.join(adir, a["id"], "README.md")
        if os.path.exists(readme):
            os.remove(readme)

    ids0 = spec["adapters"][0]["id"]
    ref = PeftModel.from_pretrained(copy.deepcopy(base), os.path.join(adir, ids0), adapter_name=ids0)
    for a in spec["adapters"][1:]:
        ref.load_adapter(os.path.join(adir, a["id"]), adapter_name=a["id"])
    ref = ref.float().eval()

    rng = random.Random(spec["seed"] + 7)
    prompts = ["Tenants call per-adapter endpoints", "SELECT name FROM", "The quick brown fox",
               "数据 模型", "def add(a, b):", "Low-rank adaptation adds", "emoji 🙂 test", "In 2024 the model served"]
    prompts = prompts[:spec.get("prompts", len(prompts))]
    adapter_ids = [a["id"] for a in spec["adapters"]]
    cases = []
    for i, text in enumerate(prompts):
        ids = tok(text, add_special_tokens=True)["input_ids"]
        for adapter in [None] + adapter_ids:
            if (i + (0 if adapter is None else len(adapter))) % 2 and adapter is not None and i > 3:
                continue
            cases.append(make_case(ref, ids, 16, adapter, text))
    # A long prompt: many KV pages, rope at larger positions, past every sliding window.
    special_ids = set(tok.all_special_ids) | {int(k) for k in tok.added_tokens_decoder}
    ordinary = [i for i in range(V) if i not in special_ids]
    long_ids = ([bos_id] if bos_id is not None and tok(".")["input_ids"][0] == bos_id else []) + \
               [rng.choice(ordinary) for _ in range(300)]
    for adapter in [None, adapter_ids[0], adapter_ids[-1]]:
        cases.append(make_case(ref, long_ids, 24, adapter, None))
    longest = max(len(c["prompt_ids"]) + len(c["greedy_ids"]) for c in cases)
    if spec["arch"] == "phi3" and "original_max_position_embeddings" in spec["config"]:
        assert longest < spec["config"]["original_max_position_embeddings"], "a sequence reaches LongRoPE's long factors"
    base_long = next(c for c in cases if c["prompt"] is None and c["adapter"] is None)
    ablations = run_ablations(spec, mdir, long_ids, torch.tensor(base_long["first_logits"]), base_long["greedy_ids"])

    tok_texts = ["Hello world", "  leading spaces and  double  spaces", "tabs\tand\nnewlines\r\n\n",
                 "Numbers 1234567 and 3.14159", "数据 模型 推理", "emoji 🙂👍🏽 done", "it's they're we'll I'd",
                 "SELECT * FROM t WHERE x<>1;", "", " ", "Ünïcödé façade naïve", "mixed123abc 456def",
                 "Ελληνικά и кириллица ★", "e\u0301 composed by NFC", "<|im_start|>user<|im_end|> <s> <bos>"]
    tokenizer_matches_file(tok, mdir, tok_texts + prompts)
    tcases = [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"],
               "ids_with_bos": tok(t, add_special_tokens=True)["input_ids"]} for t in tok_texts]
    chat = [{"role": "system", "content": "You write SQL."}, {"role": "user", "content": "Count the orders."}]
    rendered = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    chat_ids = tok(rendered, add_special_tokens=False)["input_ids"]
    exp = {"about": "Reference outputs from Hugging Face transformers + peft: float32 math on the stored weights "
                    "(from_pretrained(dtype=float32, attn_implementation='eager') on model/ and adapters/). "
                    "greedy_ids: 16 (or 24) greedy tokens with EOS ignored; prompt_ids are the tokenizer's ids "
                    "with its special tokens (BOS where the tokenizer adds one).",
           "generator": {"tool": "tools/make_fixtures.py " + which, "torch": torch.__version__,
                         "transformers": transformers.__version__, "peft": peft.__version__,
                         "tokenizers": tokenizers.__version__, "ablations": ablations},
           "model_dir": "model", "adapters": adapter_ids,
           "cases": cases, "tokenizer_cases": tcases,
           "chat": {"messages": chat, "add_generation_prompt": True, "rendered": rendered, "ids": list(chat_ids)}}
    with open(os.path.join(root, "expected.json"), "w") as f:
        json.dump(exp, f, ensure_ascii=False, indent=1)
    mins = sorted(c["min_margin"] for c in cases)
    print(name, "vocab", V, "cases", len(cases), "longest sequence", longest, "min margin", mins[0],
          "lowest five", mins[:5])
