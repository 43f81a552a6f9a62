#!/usr/bin/env python3
"""Decode references for tests/data/real-tokenizers/*/: what Hugging Face `tokenizers` gives.

For every raw case and chat of cases.json (whose encodings came from Transformers.js and agree
with the Python `tokenizers` package), records decode(ids) with and without skip_special_tokens
and the pieces DecodeStream yields id by id ("" where it yields None). Writes decode.json next
to cases.json. Needs only `pip install tokenizers` (0.21 or later, for DecodeStream); CI reads
the committed output and needs no Python package.

    python3 tools/make_tokenizer_decode_refs.py [tests/data/real-tokenizers]
"""
import json
import pathlib
import sys

import tokenizers
from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream


def stream(tok, ids, skip):
    ds = DecodeStream(skip_special_tokens=skip)
    return [ds.step(tok, i) or "" for i in ids]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/real-tokenizers")
    for family in sorted(p for p in root.iterdir() if (p / "cases.json").exists()):
        tok = Tokenizer.from_file(str(family / "tokenizer.json"))
        cases = json.loads((family / "cases.json").read_text())
        out = []
        items = [(c["name"], c["ids"]) for c in cases["raw"]]
        items += [("chat:" + c["name"], c["ids"]) for c in cases["chats"]]
        for name, ids in items:
            out.append({
                "name": name,
                "ids": ids,
                "text": tok.decode(ids, skip_special_tokens=False),
                "text_skip_special": tok.decode(ids, skip_special_tokens=True),
                "stream": stream(tok, ids, False),
                "stream_skip_special": stream(tok, ids, True),
            })
        doc = {"family": family.name, "tokenizers_version": tokenizers.__version__, "decode": out}
        (family / "decode.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        print(family.name, len(out))


if __name__ == "__main__":
    main()
