"""The architectures tools/make_fixtures.py builds besides the `public` Llama spec.

Each spec: `arch` (a key of ARCHS in fixture_family.py), `family` (tokenizer style, see
fixture_tokenizers.py), `template` (chat template), `vocab`, `config` (keyword arguments of the
transformers config class), `layout` ("legacy": config.json rewritten the way checkpoints on the Hub
still carry it, rope_theta/rope_scaling at top level; "v5": as transformers 5 writes it, with
rope_parameters and layer_types), `adapters` (PEFT LoRA adapters: rank, alpha, targets, dtype,
rsLoRA, layers), and `ablations`: config changes that must change the outputs (each is checked,
so a feature that does not bite on these tiny weights fails the build instead of going unnoticed).
"""
ALL_LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL_PHI3_LINEAR = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


def _adapters(linear, attn, mlp):
    """Four adapters: float32 on two attention modules, bfloat16 on every module, rsLoRA on every
    module, and a rank-32 float32 one on one layer only, so ranks 4/8/16/32 and dtypes mix."""
    return [
        dict(id="chat-r8", r=8, alpha=16, targets=attn, dtype="float32"),
        dict(id="all-bf16-r16", r=16, alpha=32, targets=linear, dtype="bfloat16"),
        dict(id="rs-r4", r=4, alpha=8, targets=linear, rslora=True, dtype="float32"),
        dict(id="layer1-r32", r=32, alpha=16, targets=mlp, layers=[1], dtype="float32"),
    ]


LLAMA_ADAPTERS = _adapters(ALL_LLAMA_LINEAR, ["q_proj", "v_proj"], ["o_proj", "gate_proj", "up_proj", "down_proj"])
PHI3_ADAPTERS = _adapters(ALL_PHI3_LINEAR, ["qkv_proj"], ["o_proj", "gate_up_proj", "down_proj"])

# LongRoPE factors: one per rotary frequency pair (head_dim / 2), growing like Phi-3's do.
LONGROPE_SHORT = [1.0, 1.02, 1.07, 1.18, 1.35, 1.61, 2.03, 2.48]
LONGROPE_LONG = [1.0, 1.25, 1.9, 3.1, 5.2, 8.4, 13.7, 21.5]

SPECS = {
    "qwen2": dict(
        arch="qwen2", family="qwen", template="qwen2_5", seed=2001, vocab=640, layout="legacy",
        config=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                    tie_word_embeddings=True, rms_norm_eps=1e-6, use_sliding_window=False),
        # Qwen2.5 configs on the Hub carry a sliding_window that use_sliding_window=false switches off.
        legacy_extra=dict(sliding_window=32, max_window_layers=2),
        adapters=LLAMA_ADAPTERS, ablations=[]),
    "qwen2.5-untied": dict(
        arch="qwen2", family="qwen", template="qwen2_5", seed=2002, vocab=512, layout="v5", prompts=5,
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=8,
                    num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                    tie_word_embeddings=False, rms_norm_eps=1e-6, use_sliding_window=False),
        adapters=LLAMA_ADAPTERS[1:], ablations=[]),
    "qwen3": dict(
        arch="qwen3", family="qwen", template="qwen3", seed=2003, vocab=640, layout="v5",
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=32, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                    tie_word_embeddings=True, rms_norm_eps=1e-6, use_sliding_window=False),
        adapters=LLAMA_ADAPTERS, ablations=[]),
    "mistral": dict(
        arch="mistral", family="mistral", template="mistral_v01", seed=2004, vocab=640, layout="legacy",
        config=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                    sliding_window=32, tie_word_embeddings=False, rms_norm_eps=1e-5),
        adapters=LLAMA_ADAPTERS,
        ablations=[dict(what="full attention instead of the 32-token sliding window", config=dict(sliding_window=None),
                        must_change_greedy=True)]),
    "mistral-nemo": dict(
        arch="mistral", family="mistral", template="mistral_v01", seed=2005, vocab=640, layout="legacy",
        config=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=32, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                    sliding_window=None, tie_word_embeddings=False, rms_norm_eps=1e-5),
        adapters=LLAMA_ADAPTERS, ablations=[]),
    "gemma2": dict(
        arch="gemma2", family="gemma", template="gemma", seed=2006, vocab=640, layout="legacy",
        config=dict(hidden_size=96, intermediate_size=192, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=24,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                    sliding_window=24, final_logit_softcapping=10.0, attn_logit_softcapping=3.0,
                    hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, rms_norm_eps=1e-6),
        adapters=LLAMA_ADAPTERS,
        ablations=[dict(what="no final logit soft-capping", config=dict(final_logit_softcapping=None)),
                   dict(what="no attention logit soft-capping", config=dict(attn_logit_softcapping=None)),
                   dict(what="full attention on the sliding layers", config=dict(sliding_window=4096),
                        must_change_greedy=True)]),
    "gemma3": dict(
        arch="gemma3", family="gemma", template="gemma", seed=2007, vocab=640, layout="legacy",
        config=dict(hidden_size=64, intermediate_size=192, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=40,
                    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                    layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
                    sliding_window=20, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                    rms_norm_eps=1e-6),
        legacy_extra=dict(sliding_window_pattern=3),
        adapters=LLAMA_ADAPTERS,
        ablations=[dict(what="full attention on the sliding layers", config=dict(sliding_window=4096),
                        must_change_greedy=True),
                   dict(what="the global base on the local layers",
                        config=dict(rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
                                                     "sliding_attention": {"rope_type": "default", "rope_theta": 1000000.0}})),
                   dict(what="no linear scaling on the global layer",
                        config=dict(rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}))]),
    "phi3": dict(
        arch="phi3", family="phi3", template="phi3", seed=2008, vocab=640, layout="legacy",
        config=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                    sliding_window=2047, tie_word_embeddings=False, rms_norm_eps=1e-5, max_position_embeddings=4096,
                    original_max_position_embeddings=4096),
        adapters=PHI3_ADAPTERS, ablations=[]),
    "phi3-longrope": dict(
        arch="phi3", family="phi3", template="phi3", seed=2009, vocab=512, layout="legacy", prompts=5,
        config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=4, max_position_embeddings=2048, original_max_position_embeddings=512,
                    rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": LONGROPE_SHORT,
                                     "long_factor": LONGROPE_LONG, "original_max_position_embeddings": 512},
                    sliding_window=262144, tie_word_embeddings=False, rms_norm_eps=1e-5),
        adapters=PHI3_ADAPTERS[1:],
        ablations=[dict(what="default rope instead of LongRoPE",
                        config=dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}))]),
}
