"""Turn exllamav2's six calibration files into documents labelled with their domain.

How each file is cut into documents (the files carry no document markers except wiki's):
- wiki: one document per `<doc id=... title=...>` ... `</doc>` article (2,349 articles).
- c4: one document per line; C4 stores a web page per line (118 pages).
- tiny: one document per story; TinyStories separates them with `<|endoftext|>` lines (317 stories).
- code, technical, multilingual: blank-line-separated paragraphs merged in order until a document
  reaches 2,000 characters, so a document is a coherent run of a file or article rather than a
  single line of code or a heading.
"""

from __future__ import annotations

import json
import re

DEMO_CORPUS_SHA256 = "832f6df2133a34345cfddf49af7d82e51a71453bc1fbb58c87e5cbde7fd9f6b8"
MERGE_MIN_CHARS = 2000
_WIKI_DOC = re.compile(r'<doc id="(?P<id>[^"]+)"[^>]*>\n(?P<body>.*?)</doc>', re.S)


def _merge_paragraphs(text: str) -> list[str]:
    docs, current = [], []
    for para in re.split(r"\n\s*\n", text):
        if not para.strip():
            continue
        current.append(para)
        if sum(len(p) for p in current) >= MERGE_MIN_CHARS:
            docs.append("\n\n".join(current))
            current = []
    if current:
        docs.append("\n\n".join(current))
    return docs


def split_file(stem: str, text: str) -> list[tuple[str, str]]:
    """(local id, text) pairs for one calibration file."""
    if stem == "wiki":
        return [(f"wiki-{m['id']}", m["body"].strip()) for m in _WIKI_DOC.finditer(text)]
    if stem == "c4":
        parts = [line for line in text.split("\n") if line.strip()]
    elif stem == "tiny":
        parts = [p.strip() for p in text.split("<|endoftext|>") if p.strip()]
    else:
        parts = _merge_paragraphs(text)
    return [(f"{stem}-{i:05d}", part) for i, part in enumerate(parts)]


def build_documents(texts: dict[str, str]) -> list[dict]:
    docs = []
    for stem in sorted(texts):
        docs += [{"id": i, "domain": stem, "text": t} for i, t in split_file(stem, texts[stem])]
    return docs


def write_jsonl(docs: list[dict]) -> bytes:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")
