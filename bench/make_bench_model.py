#!/usr/bin/env python3
"""Writes a Llama-shaped model with random bf16 weights (and optionally rank-r PEFT LoRA adapters on
q,k,v,o) for the CPU serving benchmark (issue 13). Python standard library only: the values come
from a pool of 2^20 Gaussian bf16 numbers, each tensor a slice of the pool repeated from a random
offset, which is what a throughput measurement needs (real bytes, no NaNs, no structure that a
kernel could exploit) and fast enough for a 2.5 GB model.

usage: bench/make_bench_model.py OUT_DIR --shape smollm2-135m|llama-3.2-1b [--adapters 8 --rank 16]
The tokenizer is the demo model's (examples/models/tiny-llama): prompts are sent as token ids."""
import argparse, json, os, random, shutil, struct

SHAPES = {
    # hidden, layers, heads, kv_heads, head_dim, intermediate, vocab, tied, rope_theta
    "smollm2-135m": dict(hidden=576, layers=30, heads=9, kv_heads=3, head_dim=64,
                         intermediate=1536, vocab=49152, tied=True, rope_theta=100000.0),
    # A few MB, for the benchmark's own smoke test (tests/CMakeLists.txt).
    "tiny": dict(hidden=128, layers=2, heads=4, kv_heads=2, head_dim=32, intermediate=256,
                 vocab=1024, tied=True, rope_theta=10000.0),
    "llama-3.2-1b": dict(hidden=2048, layers=16, heads=32, kv_heads=8, head_dim=64,
                         intermediate=8192, vocab=128256, tied=True, rope_theta=500000.0),
}
HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(os.path.dirname(HERE), "examples", "models", "tiny-llama")


class Pool:
    """2^20 bf16 values ~ N(0, std), as bytes; tensors are cut from it cyclically."""

    def __init__(self, rng, std):
        n = 1 << 20
        floats = struct.pack(f"<{n}f", *(rng.gauss(0.0, std) for _ in range(n)))
        # bf16 = the high half of each float32 (truncation; fine for random weights).
        data = bytearray(2 * n)
        data[0::2] = floats[2::4]
        data[1::2] = floats[3::4]
        self.data = bytes(data)
        self.rng = rng

    def write(self, f, elems):
        want = elems * 2
        start = self.rng.randrange(0, len(self.data) // 2) * 2
        buf = self.data[start:] + self.data[:start]
        while want > 0:
            chunk = buf[:min(want, len(buf))]
            f.write(chunk)
            want -= len(chunk)


def write_safetensors(path, tensors, fill):
    """tensors: [(name, shape)]; fill(f, name, elems) writes each tensor's bf16 bytes in order."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        elems = 1
        for d in shape:
            elems *= d
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + 2 * elems]}
        offset += 2 * elems
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in tensors:
            elems = 1
            for d in shape:
                elems *= d
            fill(f, name, elems)


def model_tensors(s):
    h, hd = s["hidden"], s["head_dim"]
    q, kv, inter = s["heads"] * hd, s["kv_heads"] * hd, s["intermediate"]
    out = [("model.embed_tokens.weight", (s["vocab"], h)), ("model.norm.weight", (h,))]
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (q, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, q)),
                (p + "mlp.gate_proj.weight", (inter, h)), (p + "mlp.up_proj.weight", (inter, h)),
                (p + "mlp.down_proj.weight", (h, inter))]
    if not s["tied"]:
        out.append(("lm_head.weight", (s["vocab"], h)))
    return out


def linear_bytes_per_token(s, bytes_per_elem=2):
    """Weight bytes one decode token reads: every projection and the LM head (the embedding
    lookup reads one row; norms are negligible)."""
    h, hd = s["hidden"], s["head_dim"]
    q, kv, inter = s["heads"] * hd, s["kv_heads"] * hd, s["intermediate"]
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * inter
    return (s["layers"] * per_layer + s["vocab"] * h) * bytes_per_elem


def make_model(out, shape, seed=1):
    s = SHAPES[shape]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    weights = Pool(rng, 0.02)
    one = struct.pack("<f", 1.0)[2:4]  # bf16 1.0

    def fill(f, name, elems):
        if name.endswith("norm.weight"):
            f.write(one * elems)
        else:
            weights.write(f, elems)

    write_safetensors(os.path.join(out, "model.safetensors"), model_tensors(s), fill)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": s["hidden"], "intermediate_size": s["intermediate"],
        "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"], "head_dim": s["head_dim"],
        "vocab_size": s["vocab"], "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "rope_theta": s["rope_theta"], "rope_scaling": None, "tie_word_embeddings": s["tied"],
        "attention_bias": False, "mlp_bias": False, "bos_token_id": 0, "eos_token_id": 4,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(os.path.join(DEMO, name), os.path.join(out, name))
    return s


_ADAPTER_POOL = None


def make_adapter(out, shape, rank, seed):
    """A PEFT LoRA adapter on q,k,v,o of every layer (rank `rank`, alpha 2 * rank); adapters
    differ by the pool offsets their seed picks."""
    global _ADAPTER_POOL
    s = SHAPES[shape]
    os.makedirs(out, exist_ok=True)
    if _ADAPTER_POOL is None:
        _ADAPTER_POOL = Pool(random.Random(7), 0.02)
    a_pool = b_pool = _ADAPTER_POOL
    _ADAPTER_POOL.rng = random.Random(seed)
    h, hd = s["hidden"], s["head_dim"]
    dims = {"q_proj": (h, s["heads"] * hd), "k_proj": (h, s["kv_heads"] * hd),
            "v_proj": (h, s["kv_heads"] * hd), "o_proj": (s["heads"] * hd, h)}
    tensors = []
    for i in range(s["layers"]):
        for m, (din, dout) in dims.items():
            p = f"base_model.model.model.layers.{i}.self_attn.{m}."
            tensors += [(p + "lora_A.weight", (rank, din)), (p + "lora_B.weight", (dout, rank))]
    write_safetensors(os.path.join(out, "adapter_model.safetensors"), tensors,
                      lambda f, name, elems: (a_pool if "lora_A" in name else b_pool).write(f, elems))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
              "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
              "use_dora": False, "target_modules": list(dims), "base_model_name_or_path": None}
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    ap.add_argument("--adapters", type=int, default=0)
    ap.add_argument("--rank", type=int, default=16)
    args = ap.parse_args()
    make_model(os.path.join(args.out, "model"), args.shape)
    for i in range(args.adapters):
        make_adapter(os.path.join(args.out, f"adapter-{i}"), args.shape, args.rank, 100 + i)
    print(args.out)
