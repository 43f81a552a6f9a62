"""Small trained tokenizers in the style of each model family, for tools/make_fixtures.py.

Every family's tokenizer.json mirrors the pipeline of the family's real tokenizer (see
tests/data/real-tokenizers/): byte-level BPE with an NFC normalizer for Qwen, SentencePiece-style
BPE with byte_fallback for Mistral (Prepend + Replace normalizer), Phi-3 (Metaspace pre-tokenizer)
and Gemma (Replace normalizer, Split on " "). Each tokenizer.json post-processor agrees with
add_bos_token in tokenizer_config.json, and the Mistral/Phi-3 ones are saved as
PreTrainedTokenizerFast: transformers 5 rebuilds a LlamaTokenizer's normalizer and pre-tokenizer
from the class instead of tokenizer.json, and ignores add_bos_token when tokenizer.json exists,
where transformers 4 honoured it; these choices make every version read the same pipeline.
The training corpus is text
held in this file, so the vocabulary does not depend on the Python version (the `public` Llama
spec trains on stdlib docstrings, which do).
"""
import json, os, random
from tokenizers import Tokenizer, Regex, models, trainers, pre_tokenizers, decoders, processors, normalizers

QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS_PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. ", "Tenants call per-adapter endpoints; admins upload adapters. ",
    "SELECT name, total FROM orders WHERE total > 100 ORDER BY total DESC; ",
    "In 2024 the model served 1,234 requests per second across 56 adapters. ",
    "Low-rank adaptation adds B times A to a frozen weight matrix. ", "def add(a, b):\n    return a + b\n",
    "Le modèle répond en français, déjà très bien. ", "数据 模型 推理 服务 ", "emoji 🙂 test ✓ done. ",
    "A serving platform keeps many small adapters next to one large base model and picks the right one "
    "for every request. Batches mix requests of different tenants, so each row of a batch may use "
    "another adapter, or none at all. ",
    "Attention looks back over the keys of earlier positions; a sliding window limits how far back it "
    "looks, and rotary embeddings turn each position into an angle. ",
    "Count the orders of each customer, then sort them by date and return the ten largest totals. ",
    "You are a helpful assistant. Answer briefly and cite the table you used. ",
    "for i in range(10):\n    print(i * i)\n", "if (x != 0) { return y / x; } else { return 0; }\n",
    "Numbers like 3.14159, 2.71828 and 1,000,000 appear in reports; dates like 2026-12-02 too. ",
    "Der Server antwortet schnell. El servidor responde rápido. Il server risponde subito. ",
    "The weights are stored in bfloat16 and the reference is computed in float32. ",
    "Users write questions, the model writes answers, and the system prompt sets the tone. ",
]


def corpus(seed):
    rng = random.Random(seed)
    texts = list(CORPUS_PARAGRAPHS)
    for _ in range(600):
        texts.append("".join(rng.choice(CORPUS_PARAGRAPHS) for _ in range(4)))
    return texts


def _byte_level(vocab, seed, specials):
    """Qwen style: NFC, Split(regex) + ByteLevel, ByteLevel post-processor and decoder, no BOS."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(seed), trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _sentencepiece_bpe(vocab, seed, leading_specials, dummy_prefix):
    """A BPE model trained on '▁'-joined words, with the 256 <0xXX> byte tokens in its vocabulary (after
    the leading special tokens, as SentencePiece lays them out) and byte_fallback on."""
    trainer_tok = Tokenizer(models.BPE())
    norm = [normalizers.Replace(" ", "▁")]
    if dummy_prefix:
        norm.insert(0, normalizers.Prepend("▁"))
    trainer_tok.normalizer = normalizers.Sequence(norm)
    trainer_tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    n_fixed = len(leading_specials) + 256
    trainer = trainers.BpeTrainer(vocab_size=vocab - n_fixed, limit_alphabet=90, show_progress=False)
    trainer_tok.train_from_iterator(corpus(seed), trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    ordered = list(leading_specials) + ["<0x%02X>" % b for b in range(256)]
    ordered += [t for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]) if t not in ordered]
    vocab_map = {t: i for i, t in enumerate(ordered)}
    return Tokenizer(models.BPE(vocab=vocab_map, merges=merges, unk_token="<unk>", fuse_unk=True,
                                byte_fallback=True))


def _save(tok, path, config, chat_template):
    """Writes tokenizer.json as built and a tokenizer_config.json of our own (so transformers cannot
    rewrite the pipeline), the chat template inside it as most checkpoints on the Hub have it."""
    os.makedirs(path, exist_ok=True)
    tok.save(os.path.join(path, "tokenizer.json"))
    added = {}
    for t in json.loads(tok.to_str())["added_tokens"]:
        added[str(t["id"])] = {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
    cfg = dict(config)
    cfg["added_tokens_decoder"] = added
    cfg["chat_template"] = chat_template
    cfg.setdefault("clean_up_tokenization_spaces", False)
    cfg.setdefault("model_max_length", 4096)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)


def make_tokenizer(family, vocab, seed, path, chat_template):
    """Builds and saves a family-style tokenizer; returns the names of its bos/eos tokens."""
    if family == "qwen":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = _byte_level(vocab, seed, specials)
        _save(tok, path, {"tokenizer_class": "Qwen2Tokenizer", "add_bos_token": False, "add_prefix_space": False,
                          "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                          "unk_token": None, "errors": "replace", "split_special_tokens": False}, chat_template)
        return {"bos": None, "eos": "<|im_end|>"}
    if family == "mistral":  # Mistral 7B v0.1: Prepend + Replace normalizer, no pre-tokenizer, BOS in the template
        tok = _sentencepiece_bpe(vocab, seed, ["<unk>", "<s>", "</s>"], dummy_prefix=True)
        tok.add_special_tokens(["<unk>", "<s>", "</s>"])
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1, right=0)])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", 1)])
        _save(tok, path, {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": True,
                          "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                          "pad_token": None, "spaces_between_special_tokens": False}, chat_template)
        return {"bos": "<s>", "eos": "</s>"}
    if family == "phi3":  # Llama 2 as recent converters write it: Metaspace pre-tokenizer, no normalizer
        tok = _sentencepiece_bpe(vocab - 5, seed, ["<unk>", "<s>", "</s>"], dummy_prefix=True)
        tok.add_special_tokens(["<unk>", "<s>", "</s>"])
        tok.add_special_tokens(["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"])
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1, right=0)])
        tok.post_processor = None  # no BOS, and add_bos_token false agrees
        _save(tok, path, {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
                          "add_eos_token": False, "bos_token": "<s>", "eos_token": "<|endoftext|>",
                          "unk_token": "<unk>", "pad_token": "<|endoftext|>"}, chat_template)
        return {"bos": "<s>", "eos": "<|end|>"}
    if family == "gemma":  # Gemma: Replace normalizer, Split(" "), no dummy prefix, BOS in the template and add_bos_token
        lead = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
        tok = _sentencepiece_bpe(vocab, seed, lead, dummy_prefix=False)
        tok.add_special_tokens(lead)
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                           special_tokens=[("<bos>", 2)])
        _save(tok, path, {"tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
                          "bos_token": "<bos>", "eos_token": "<end_of_turn>", "unk_token": "<unk>",
                          "pad_token": "<pad>", "mask_token": "<mask>", "padding_side": "left",
                          "spaces_between_special_tokens": False}, chat_template)
        return {"bos": "<bos>", "eos": "<end_of_turn>"}
    raise ValueError("unknown tokenizer family " + family)
