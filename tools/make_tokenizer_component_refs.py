#!/usr/bin/env python3
"""Small tokenizers that exercise the tokenizer.json components the real families do not, with
reference encodings, decodes and DecodeStream pieces from Hugging Face `tokenizers`.

Each is trained on a tiny built-in corpus and written to
tests/data/tokenizer-components/<name>/{tokenizer.json, tokenizer_config.json, cases.json}.
Needs only `pip install tokenizers` (0.21 or later); CI reads the committed output.

    python3 tools/make_tokenizer_component_refs.py [tests/data/tokenizer-components]
"""
import json
import pathlib
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers.decoders import DecodeStream

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m, \u00fcber \u00dftra\u00dfe!",
    "Numbers 12345 and 3.14159, dates 2024-05-06; phone +1 (555) 010-9999.",
    "Hello, world! How's it going? I'm fine -- thanks...",
    "\u6570\u636e\u6a21\u578b\u63a8\u7406 \u3053\u3093\u306b\u3061\u306f \u4e16\u754c",
    "def f(x):\n    return x ** 2  # square\n",
    "Tokenizers split text into words, then words into subword units.",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \u2460\u2461\u2462 \ufb01ne \u00bd",
] * 20

TEXTS = [
    "Hello world",
    "  leading and trailing spaces  ",
    "The QUICK brown fox; it's 12345 miles.",
    "Caf\u00e9 vs Cafe\u0301 \u2014 NFC vs NFD",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \u2460 \ufb01ne \u00bd",
    "controls\x01\x7f zero\u200bwidth \u3000ideographic\u3000space \u00a0nbsp",
    "\u6570\u636e\u6a21\u578b \u3053\u3093\u306b\u3061\u306f",
    "emoji \U0001F642\U0001F44D\U0001F3FD and \u0130stanbul",
    "tabs\tand\nnewlines\r\nmixed",
    "unknownish \u05e9\u05dc\u05d5\u05dd \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "[MASK] in the middle [SEP] and <extra> tokens",
    "",
    "x",
]


def bert():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=20))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    return tok


def unigram_metaspace():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Replace(tokenizers.Regex(r"\s+"), " "),
        normalizers.Strip(left=False, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(
        vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
        byte_fallback=True))
    tok.add_tokens([tokenizers.AddedToken("<extra>", normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    return tok


def bpe_suffix():
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
        normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Punctuation(behavior="isolated")])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=350, special_tokens=["[UNK]", "<s>", "</s>", "[MASK]"],
        continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1))
    return tok


def bpe_byte_level_prefix():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKD()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split(pattern="o", behavior="merged_with_next"),
        pre_tokenizers.Split(pattern=tokenizers.Regex(r"[aeiu]+"), behavior="contiguous",
                             invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def metaspace_sentencepiece_bpe():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=False)
    tok.decoder = decoders.Sequence([
        decoders.Metaspace(prepend_scheme="always", split=False), decoders.ByteFallback(),
        decoders.Fuse(), decoders.Strip(content=" ", left=1, right=0)])
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens))
    tok.add_special_tokens([tokenizers.AddedToken("[MASK]", lstrip=True, rstrip=True)])
    return tok


def precompiled_nmt_nfkc():
    """SentencePiece's nmt_nfkc charsmap (from a throwaway sentencepiece model) as a Precompiled
    normalizer; needs `pip install sentencepiece protobuf` as well."""
    import io
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=buf,
                                   vocab_size=100, normalization_rule_name="nmt_nfkc",
                                   minloglevel=2)
    proto = pb.ModelProto()
    proto.ParseFromString(buf.getvalue())
    charsmap = proto.normalizer_spec.precompiled_charsmap
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    tok.decoder = decoders.Metaspace(prepend_scheme="always")
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"]))
    return tok


BUILDERS = {
    "precompiled_nmt_nfkc": precompiled_nmt_nfkc,
    "bert_wordpiece": bert,
    "unigram_metaspace": unigram_metaspace,
    "bpe_suffix_whitespace": bpe_suffix,
    "bpe_byte_level_splits": bpe_byte_level_prefix,
    "sentencepiece_bpe_metaspace": metaspace_sentencepiece_bpe,
}


def stream(tok, ids, skip):
    """None where tokenizers itself fails (its BPEDecoder panics on an empty window)."""
    ds = DecodeStream(skip_special_tokens=skip)
    try:
        return [ds.step(tok, i) or "" for i in ids]
    except BaseException:  # pyo3's PanicException derives from BaseException
        return None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tokenizer-components")
    for name, build in BUILDERS.items():
        tok = build()
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        tok.save(str(out / "tokenizer.json"))
        (out / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}) + "\n")
        cases = []
        for text in TEXTS:
            ids = tok.encode(text, add_special_tokens=True).ids
            cases.append({
                "text": text,
                "ids": ids,
                "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
                "stream": stream(tok, ids, False),
                "stream_skip_special": stream(tok, ids, True),
            })
        doc = {"name": name, "tokenizers_version": tokenizers.__version__, "cases": cases}
        (out / "cases.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        print(name, len(cases), (out / "tokenizer.json").stat().st_size)


if __name__ == "__main__":
    main()
