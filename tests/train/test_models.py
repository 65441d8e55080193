"""Model sizes: the paper's shapes reach their nominal sizes, CPU sizes their targets, counts add up."""

from __future__ import annotations

import pytest
import torch

from splitlm.core.errors import ConfigError
from splitlm.train import models
from splitlm.train.data import read_run
from splitlm.train.models import weights_sha256
from splitlm.train.runner import TrainJob, _initial_model

GPT2_VOCAB = 50257


def _meta_model(name: str, arch: str = "gpt2", vocab: int = GPT2_VOCAB):
    config = models.build_config(models.get_size(name), arch, vocab, 0, 2049)
    with torch.device("meta"):  # shapes only: a 6.7B model costs no memory
        return models.build_model(config, seed=0)


@pytest.mark.parametrize(
    "name, nominal", [("100M", 100e6), ("125M", 125e6), ("350M", 350e6), ("760M", 760e6),
                      ("1.3B", 1.3e9), ("2.7B", 2.7e9), ("6.7B", 6.7e9)],
)  # fmt: skip
def test_paper_sizes_reach_their_names(name, nominal):
    counts = models.count_params(_meta_model(name))
    assert abs(counts.total - nominal) / nominal < 0.05, (name, counts)


def test_paper_hyperparameters_follow_appendix_a():
    got = {n: (s.n_layer, s.n_head, s.width, s.lr, s.weight_decay, s.clip) for n, s in models.SIZES.items()}
    assert got["100M"] == (24, 8, 512, 3e-4, 0.01, 0.1)
    assert got["125M"] == (12, 12, 768, 1e-3, 0.0, 0.1)
    assert got["1.3B"] == (24, 16, 2048, 3e-4, 0.01, 0.1)
    assert got["2.7B"] == (32, 32, 2560, 1.6e-4, 0.01, 1.0)
    assert got["6.7B"] == (32, 32, 4096, 1.2e-4, 0.01, 1.0)
    assert got["phonebook"][:3] == (6, 8, 256)


@pytest.mark.parametrize("name, target", [("tiny", 1e6), ("mini", 5e6)])
def test_cpu_sizes_hit_their_non_embedding_targets(name, target):
    counts = models.count_params(_meta_model(name))
    assert abs(counts.non_embedding - target) / target < 0.1, counts


@pytest.mark.parametrize("arch", models.ARCHES)
def test_embedding_split_of_the_count(arch):
    model = _meta_model("tiny", arch, vocab=1000)
    counts = models.count_params(model)
    width = models.SIZES["tiny"].width
    positions = 2049 * width if arch == "gpt2" else 0  # Llama has rotary positions, no table
    # The output head is tied to the token table, so the embedding share is counted once.
    assert counts.total - counts.non_embedding == 1000 * width + positions
    assert counts.total == sum(p.numel() for p in model.parameters())


def test_llama_option_trains_a_step():
    torch.manual_seed(0)
    config = models.build_config(models.get_size("tiny"), "llama", 300, 0, 33)
    model = models.build_model(config, seed=0)
    ids = torch.randint(0, 300, (2, 33))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert model.config.model_type == "llama" and torch.isfinite(loss)
    assert model.model.embed_tokens.weight.grad.abs().sum() > 0


def test_vocabulary_comes_from_the_runs_tokenizer(tiny_run, gpt2_run, tmp_path):
    for run, vocab in ((tiny_run, 2048), (gpt2_run, GPT2_VOCAB)):
        info = read_run(run)
        job = TrainJob("pretrain", tmp_path, run, "tiny", "gpt2", None, (0,), (0,), 1, 0, 1, 1, 1)
        model = _initial_model(job, info)
        assert info.vocab_size == vocab and model.config.vocab_size == vocab
        assert model.config.n_positions == info.seq_len + 1


def test_same_seed_same_weights_other_seed_other_weights():
    config = models.build_config(models.get_size("tiny"), "gpt2", 500, 0, 129)
    first, again, other = (weights_sha256(models.build_model(config, seed)) for seed in (0, 0, 1))
    assert first == again != other


def test_unknown_size_and_arch_are_user_errors():
    with pytest.raises(ConfigError, match="--size"):
        models.get_size("3B")
    with pytest.raises(ConfigError, match="--arch"):
        models.build_config(models.get_size("tiny"), "mamba", 100, 0, 129)
