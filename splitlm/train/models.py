"""Model sizes, their Hugging Face configs and parameter counts.

Paper sizes follow App. A of Seto et al. (2026): layers / heads / width and the per-size learning
rate, weight decay and gradient clip. The paper names a 760M model but gives no shape for it; we use
GPT-3's 760M ("Large": 24 layers, 16 heads, 1536 wide, lr 2.5e-4) with the weight decay and clip of
its neighbours 350M and 1.3B (0.01, 0.1). The CPU sizes (`tiny`, `mini`, `phonebook`) are ours;
`phonebook` is the shape of the paper's Sec. 3.2 memorisation model with its lr 1e-4.

Both architectures tie the output head to the token embedding (GPT-2 does; our Llama-style option
does too so the two have comparable counts) and use no dropout, as in modern pretraining.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from splitlm.core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

# torch and transformers are imported where they are used: the sizes and their checks stay
# importable in a moment (flag errors come back before the heavy libraries load).

ARCHES = ("gpt2", "llama")


@dataclass(frozen=True)
class ModelSize:
    """One decoder shape and its optimiser settings."""

    name: str
    """Size name as given on the command line (`tiny`, `125M`, ...)."""
    n_layer: int
    """Transformer blocks."""
    n_head: int
    """Attention heads per block; `width` must be a multiple of it."""
    width: int
    """Hidden size (d_model)."""
    lr: float
    """Peak learning rate; also the constant rate of every branch (paper App. A)."""
    weight_decay: float
    """AdamW weight decay (not applied to biases and norms)."""
    clip: float
    """Gradient-norm clip."""
    adam_beta2: float = 0.999
    """AdamW beta2 (paper App. A: 0.999). Its memory of about 1 / (1 - beta2) steps must be a small share of
    a run: 1% of the paper's 100,000 steps, but most of a 1,600-step CPU run."""

    def __post_init__(self) -> None:
        assert self.width % self.n_head == 0, f"{self.name}: width {self.width} not divisible by heads"


SIZES: dict[str, ModelSize] = {
    s.name: s
    for s in [
        ModelSize("tiny", 4, 4, 144, lr=1e-3, weight_decay=0.01, clip=1.0),  # 1.0M non-embedding
        ModelSize("mini", 6, 6, 264, lr=1e-3, weight_decay=0.01, clip=1.0),  # 5.0M non-embedding
        ModelSize("phonebook", 6, 8, 256, lr=1e-4, weight_decay=0.01, clip=1.0),  # 4.7M non-embedding
        # ~0.1M: `train phonebook`; beta2 0.95 because its runs are 1,600 steps (see adam_beta2)
        ModelSize("phonebook-cpu", 2, 4, 64, lr=3e-3, weight_decay=0.01, clip=1.0, adam_beta2=0.95),
        # ~27k: `train phonebook --budget sufficient`; lr 1e-3 lets one cluster reach 100% (3e-3 stalls at ~90%)
        ModelSize("phonebook-cpu-narrow", 2, 4, 32, lr=1e-3, weight_decay=0.01, clip=1.0, adam_beta2=0.95),
        ModelSize("100M", 24, 8, 512, lr=3e-4, weight_decay=0.01, clip=0.1),
        ModelSize("125M", 12, 12, 768, lr=1e-3, weight_decay=0.0, clip=0.1),
        ModelSize("350M", 24, 16, 1024, lr=3e-4, weight_decay=0.01, clip=0.1),
        ModelSize("760M", 24, 16, 1536, lr=2.5e-4, weight_decay=0.01, clip=0.1),
        ModelSize("1.3B", 24, 16, 2048, lr=3e-4, weight_decay=0.01, clip=0.1),
        ModelSize("2.7B", 32, 32, 2560, lr=1.6e-4, weight_decay=0.01, clip=1.0),
        ModelSize("6.7B", 32, 32, 4096, lr=1.2e-4, weight_decay=0.01, clip=1.0),
    ]
}


def get_size(name: str) -> ModelSize:
    if name not in SIZES:
        raise ConfigError(f"--size {name}: unknown size; choose one of {', '.join(SIZES)}")
    return SIZES[name]


def build_config(size: ModelSize, arch: str, vocab_size: int, eos_id: int, context: int):
    """A transformers config for `size`; `context` is the longest input (window width = seq_len + 1)."""
    from transformers import GPT2Config, LlamaConfig

    # No pad id: windows are never padded, and a pad id equal to EOS makes transformers warn on every EOS.
    ids = dict(bos_token_id=eos_id, eos_token_id=eos_id, tie_word_embeddings=True)
    if arch == "gpt2":
        return GPT2Config(
            n_layer=size.n_layer, n_head=size.n_head, n_embd=size.width, n_positions=context,
            vocab_size=vocab_size, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids,
        )  # fmt: skip
    if arch == "llama":
        # SwiGLU with ~8/3 of the width, rounded up to a multiple of 32 (Llama's own rule of thumb).
        ffn = -(-int(8 * size.width / 3) // 32) * 32
        return LlamaConfig(
            hidden_size=size.width, intermediate_size=ffn, num_hidden_layers=size.n_layer,
            num_attention_heads=size.n_head, num_key_value_heads=size.n_head,
            max_position_embeddings=context, vocab_size=vocab_size, **ids,
        )  # fmt: skip
    raise ConfigError(f"--arch {arch}: choose one of {', '.join(ARCHES)}")


def build_model(config, seed: int) -> nn.Module:
    """A freshly initialised causal LM; the same seed gives byte-identical weights."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts of a model, each shared tensor counted once."""

    total: int
    """Every parameter, embeddings included."""
    non_embedding: int
    """Without token and learned position embeddings (and an untied output head): Kaplan's N."""


def count_params(model: nn.Module) -> ParamCounts:
    from torch import nn

    unique = {id(p): p for p in model.parameters()}
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    head = model.get_output_embeddings()
    if head is not None:
        embedding_ids.add(id(head.weight))
    total = sum(p.numel() for p in unique.values())
    embedded = sum(p.numel() for i, p in unique.items() if i in embedding_ids)
    return ParamCounts(total=total, non_embedding=total - embedded)


def weights_sha256(model: nn.Module) -> str:
    """sha256 over the name and raw bytes of every tensor: equal exactly when the weights are identical."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
