"""SplitModel: the router copied into TRAIN, routed log-likelihoods, likelihood routing, lazy branches."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.curate.cluster.router import Router
from splitlm.schemas.layout import RunLayout
from splitlm.train import checkpoint
from splitlm.train.split import copy_router
from splitlm.train.split_model import SplitModel
from tests.train.zeroshot_fixtures import run_with_router, train_with_router

SPLIT_AT = 6 * 512


@pytest.fixture(scope="module")
def routed(tmp_path_factory, tiny_run, split_train):
    root = tmp_path_factory.mktemp("routed")
    run = run_with_router(tiny_run, root)
    return run, train_with_router(split_train, run, root)


def _texts(run, n=4):
    from splitlm.schemas.run import RunSummary
    from splitlm.schemas.tokens import TokenArray
    from splitlm.tokenizer import load_tokenizer

    info = RunSummary.read(run)
    tok = load_tokenizer(info.tokenizer)
    rows = [np.asarray(TokenArray(RunLayout(run).shard(k, info.k, "val")).tokens)[:n] for k in range(info.k)]
    return [tok.decode(r[:60].tolist()) for rows_k in rows for r in rows_k]


def test_router_is_copied_and_train_needs_no_run(routed, tmp_path):
    run, train = routed
    texts = _texts(run)
    want = Router.load(run).route(texts).clusters
    moved = tmp_path / "gone"
    os.rename(run, moved)  # the curation run is not there any more
    try:
        model = SplitModel.from_pretrained(train, split_at=SPLIT_AT)
        got = model.route(texts)
    finally:
        os.rename(moved, run)
    assert model.note == ""
    assert got.tolist() == want.tolist()
    record = json.loads((train / "router" / "copied.json").read_text())
    assert set(record["files"]) == {"clusters/router.json", "clusters/router.safetensors", "tokenizer.json"}


def test_a_changed_router_file_is_refused(routed, tmp_path):
    _, train = routed
    copy = tmp_path / "train"
    shutil.copytree(train, copy, copy_function=os.link)
    tensors = copy / "router" / "clusters" / "router.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 1
    tensors.unlink()
    tensors.write_bytes(bytes(data))
    with pytest.raises(SchemaError, match="router.safetensors"):
        SplitModel.from_pretrained(copy, split_at=SPLIT_AT)


def test_old_train_folder_falls_back_to_the_run_and_says_so(routed, tmp_path, capsys):
    run, train = routed
    copy = tmp_path / "train"
    shutil.copytree(train, copy, copy_function=os.link, ignore=shutil.ignore_patterns("router"))
    model = SplitModel.from_pretrained(copy, split_at=SPLIT_AT)
    assert str(run) in model.note and "note:" in capsys.readouterr().err
    assert model.route(_texts(run)).tolist() == SplitModel.from_pretrained(train, SPLIT_AT).route(_texts(run)).tolist()


def test_a_run_without_router_copies_nothing(tiny_run, tmp_path):
    assert copy_router(tiny_run, tmp_path) is None and not (tmp_path / "router").exists()


def test_split_point_must_exist(routed):
    with pytest.raises(ConfigError, match="several split points"):
        SplitModel.from_pretrained(routed[1])
    with pytest.raises(ConfigError, match="--split-at 5"):
        SplitModel.from_pretrained(routed[1], split_at=5)


def _direct_logprob(folder, context_ids, continuation_ids):
    """Straight from one unbatched forward pass of context + continuation."""
    model = checkpoint.load(folder).eval()
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    n = len(context_ids)
    return sum(logp[n - 1 + i, t].item() for i, t in enumerate(continuation_ids))


def test_loglikelihood_is_the_routed_branchs_and_batching_does_not_change_it(routed):
    _, train = routed
    requests = [("Question: What is the capital of France?\nAnswer:", " Paris"),
                ("def main():\n    ", "return 0"), ("Once upon a time, there was a", " little girl"),
                ("The river flows", " into the sea near the old town.")]
    routes = [2, 1, 0, 1]
    model = SplitModel.from_pretrained(train, SPLIT_AT, batch_size=3, max_loaded=1)
    got = model.loglikelihood(requests, routes=routes)
    assert model.loaded == [2] and model.loads == 3  # one branch at a time, each read once
    one = SplitModel.from_pretrained(train, SPLIT_AT, batch_size=1).loglikelihood(requests, routes=routes)
    for (lp, _), (lp1, _) in zip(got, one):
        assert lp == pytest.approx(lp1, abs=1e-4)
    for (context, continuation), c, (lp, _) in zip(requests, routes, got):
        ctx, cont = model.encode_pair(context, continuation)
        assert lp == pytest.approx(_direct_logprob(model.folders[c], ctx, cont), abs=1e-4)
    # the context's trailing whitespace moves to the continuation, as in the harness
    ctx, cont = model.encode_pair("def main():\n    ", "return 0")
    assert model.tokenizer.decode(cont) == "\n    return 0" and model.tokenizer.decode(ctx) == "def main():"


def test_default_routes_come_from_the_context(routed):
    run, train = routed
    model = SplitModel.from_pretrained(train, SPLIT_AT)
    requests = [(t, " end") for t in _texts(run, 2)]
    want = model.loglikelihood(requests, routes=model.route([c for c, _ in requests]))
    assert model.loglikelihood(requests) == want


def test_likelihood_routing_picks_the_branch_with_the_lowest_prefix_loss(routed):
    run, train = routed
    model = SplitModel.from_pretrained(train, SPLIT_AT, max_loaded=3)
    texts = _texts(run, 2)
    routes = model.route(texts, by="likelihood", prefix_tokens=16)
    eos = model.tokenizer.eos_id
    for text, c in zip(texts, routes):
        ids = model.tokenizer.encode(text)[:16]
        losses = [-_direct_logprob(folder, [eos], ids) for folder in model.folders]
        assert c == int(np.argmin(losses))
    assert len(set(routes.tolist())) >= 1
    with pytest.raises(ConfigError, match="--route-by"):
        model.route(texts, by="nearest")


def test_pretrained_only_and_generate(routed):
    _, train = routed
    base = SplitModel.pretrained_only(train)
    assert base.k == 1 and base.route(["a", "b"]).tolist() == [0, 0]
    text = base.generate("Once upon a time", max_new_tokens=8)
    assert text == base.generate("Once upon a time", max_new_tokens=8) and isinstance(text, str)
    split = SplitModel.from_pretrained(train, SPLIT_AT, max_loaded=1)
    c = int(split.route(["Once upon a time"])[0])
    split.generate("Once upon a time", max_new_tokens=4)
    assert split.loaded == [c]


def test_the_routing_stage_is_copied_when_the_run_has_one(routed, tmp_path):
    run, _ = routed
    copy = tmp_path / "run"
    shutil.copytree(run, copy, copy_function=os.link)
    (copy / "routing").mkdir()
    (copy / "routing" / "routing.json").write_text("{}\n")
    (copy / "routing" / "head.safetensors").write_bytes(b"head")
    (copy / "routing" / "prefixes.safetensors").write_bytes(b"prefix vectors")  # for inspect only
    (copy / "routing" / "manifest.json").write_text("{}\n")  # a finished stage has its manifest
    folder = copy_router(copy, tmp_path / "train")
    record = json.loads((folder / "copied.json").read_text())
    assert {"routing/routing.json", "routing/head.safetensors", "routing/manifest.json"} <= set(record["files"])
    assert (folder / "routing" / "head.safetensors").read_bytes() == b"head"
    assert not (folder / "routing" / "prefixes.safetensors").exists() and "routing/prefixes.safetensors" not in record["files"]
    (copy / "routing" / "manifest.json").unlink()  # an unfinished routing stage is not copied
    assert not (copy_router(copy, tmp_path / "train") / "routing").exists()
