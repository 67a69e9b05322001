"""MixGCF: one step's loss and gradients against a dense float64 computation with explicit
loops over rows, layers and candidates; positive and hop mixing against numpy on hand-made
layers; the refusals; a short lastfm run.

The references re-seed torch and redraw ``α`` (one ``rand(B, 1, L+1, 1)``) as the model does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from sslrec.__main__ import config_dir
from sslrec.data import Batch
from sslrec.graph import normalized_adjacency
from sslrec.losses import L2Reg, breakdown, total
from sslrec.models.mixgcf import MixGCF
from sslrec.run import run
from sslrec.train import TrainerConfig
from sslrec.train.trainer import negatives_per_positive
from tests.reference import dense_normalized_adjacency, random_graph

NU, NI, D, M = 6, 8, 4, 3
USERS = torch.tensor([0, 3, 3, 5, 1])
POS = torch.tensor([2, 7, 1, 2, 0])
CANDS = torch.tensor([[5, 4, 6], [4, 4, 1], [6, 3, 0], [3, 7, 5], [3, 2, 6]])  # [B, M]


@pytest.fixture(scope="module")
def graph():
    u, i = random_graph(NU, NI, 0.5, seed=2)
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    return ut, it, normalized_adjacency(ut, it, NU, NI)


def _model(graph, **kw) -> MixGCF:
    _, _, adj = graph
    torch.manual_seed(0)
    kw = {"embedding_dim": D, "num_layers": 2, "n_negs": M, **kw}
    return MixGCF(n_users=NU, n_items=NI, adjacency=adj, **kw)


def _reference(model: MixGCF, graph, seed: int):
    """``(terms, e0)``: the step written out densely in float64, ``e0`` its leaf."""
    ut, it, _ = graph
    a = torch.from_numpy(dense_normalized_adjacency(ut.numpy(), it.numpy(), NU, NI))
    e0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    e0.requires_grad_(True)
    layers = [e0]
    for _ in range(model.num_layers):
        layers.append(a @ layers[-1])
    pooled = sum(layers) / len(layers)
    torch.manual_seed(seed)
    alpha = torch.rand(len(USERS), 1, len(layers), 1).double()
    bpr, reg_rows, synth0 = [], [], []
    for b, (u, p) in enumerate(zip(USERS.tolist(), POS.tolist(), strict=True)):
        synthetic = []
        for layer, x in enumerate(layers):
            al = alpha[b, 0, layer, 0]
            mixed = [al * x[NU + p] + (1 - al) * x[NU + c] for c in CANDS[b].tolist()]
            scores = [float((pooled[u] @ m).detach()) for m in mixed]
            synthetic.append(mixed[int(np.argmax(scores))])
        n = sum(synthetic) / len(synthetic)
        bpr.append(torch.log1p(torch.exp(pooled[u] @ n - pooled[u] @ pooled[NU + p])))
        synth0.append(synthetic[0])
        reg_rows.append(e0[u].pow(2).sum() + e0[NU + p].pow(2).sum() + synthetic[0].pow(2).sum())
    reg = model.reg.weight * 0.5 * sum(reg_rows) / len(USERS)
    return {"bpr": torch.stack(bpr).mean(), "reg": reg}, e0


def test_step_equals_dense_reference_with_gradients(graph):
    model = _model(graph)
    torch.manual_seed(5)
    terms = model.loss(Batch(USERS, POS, CANDS))
    got = breakdown(terms)
    assert set(got) == {"bpr", "reg", "total"}
    total(terms).backward()
    ref, e0 = _reference(model, graph, seed=5)
    for name, value in ref.items():
        torch.testing.assert_close(got[name].double(), value, rtol=2e-5, atol=1e-7, msg=name)
    (ref["bpr"] + ref["reg"]).backward()
    grad = torch.cat([model.user_embedding.weight.grad, model.item_embedding.weight.grad])
    torch.testing.assert_close(grad.double(), e0.grad, rtol=1e-4, atol=1e-7)


def test_mixing_against_numpy_on_hand_made_layers(graph):
    """Two rows, three candidates, three layers, chosen so that each layer prefers another
    candidate: ``α`` is shared by a row's candidates at each layer, the argmax is per layer."""
    model = _model(graph)
    user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # pooled users [B, d]
    item_layers = [
        torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 1.0], [0.0, 2.0]]),
        torch.tensor([[0.0, 0.0], [0.0, 3.0], [3.0, 0.0], [1.0, 1.0]]),
        torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [4.0, 4.0]]),
    ]
    pos = torch.tensor([0, 2])
    cands = torch.tensor([[1, 2, 3], [3, 1, 2]])
    pos_layers = torch.stack([x[pos] for x in item_layers], dim=1)
    torch.manual_seed(9)
    got = model.synthesize(user, pos_layers, item_layers, cands)  # [B, 3, d]
    torch.manual_seed(9)
    alpha = torch.rand(2, 1, 3, 1).double().numpy()[:, 0, :, 0]  # [B, L+1]
    lay = np.stack([x.double().numpy() for x in item_layers], axis=1)  # [I, L+1, d]
    expected = np.zeros((2, 3, 2))
    chosen = np.zeros((2, 3), dtype=int)
    for b in range(2):
        for layer in range(3):
            mixed = (
                alpha[b, layer] * lay[pos[b], layer] + (1 - alpha[b, layer]) * lay[cands[b], layer]
            )
            best = int(np.argmax(mixed @ user[b].double().numpy()))
            chosen[b, layer] = cands[b, best]
            expected[b, layer] = mixed[best]
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-6)
    assert len(set(chosen[0])) == 3  # hop mixing: one candidate per layer, all different


def test_gradients_reach_the_positive_and_the_chosen_candidates_only(graph):
    model = _model(graph)
    item_layers = [torch.randn(NI, D, requires_grad=True) for _ in range(3)]
    user = torch.randn(len(USERS), D)
    pos_layers = torch.stack([x[POS] for x in item_layers], dim=1)
    torch.manual_seed(2)
    model.synthesize(user, pos_layers, item_layers, CANDS).sum().backward()
    torch.manual_seed(2)
    alpha = torch.rand(len(USERS), 1, 3, 1)
    for layer, x in enumerate(item_layers):
        touched = set(torch.nonzero(x.grad.abs().sum(1)).flatten().tolist())
        with torch.no_grad():
            mixed = alpha[:, :, layer] * x[POS][:, None] + (1 - alpha[:, :, layer]) * x[CANDS]
            best = CANDS.gather(1, (mixed * user[:, None]).sum(-1).argmax(1, keepdim=True))
        assert touched == set(POS.tolist()) | set(best.flatten().tolist())


def test_reg_on_propagated_rows_uses_the_pooled_synthetic_negative(graph):
    reg = L2Reg(weight=0.1, squared=False, apply_to="propagated")
    model = _model(graph, reg=reg)
    torch.manual_seed(5)
    got = breakdown(model.loss(Batch(USERS, POS, CANDS)))
    torch.manual_seed(5)
    layers = model.layers()
    users, items = model.split(model.combine(layers))
    item_layers = [model.split(x)[1] for x in layers]
    pos_layers = torch.stack([x[POS] for x in item_layers], dim=1)
    synthetic = model.synthesize(users[USERS], pos_layers, item_layers, CANDS).mean(1)
    expected = reg(users[USERS], items[POS], synthetic)
    torch.testing.assert_close(got["reg"], expected)


def test_refuses_batches_without_n_negs_candidates(graph):
    model = _model(graph)
    with pytest.raises(ValueError, match=r"needs batches of \[B, 3\] negatives, got \[B\] neg"):
        model.loss(Batch(USERS, POS, CANDS[:, 0]))
    with pytest.raises(ValueError, match=r"got \[B, 2\] negatives.*num_negatives at 1 or .* 3"):
        model.loss(Batch(USERS, POS, CANDS[:, :2]))
    with pytest.raises(ValueError, match="n_negs"):
        _model(graph, n_negs=0)


def test_the_trainer_draws_the_candidates_the_model_requires():
    config = TrainerConfig()
    assert negatives_per_positive(config, None) == 1
    assert negatives_per_positive(config, 16) == 16  # the default 1 gives way
    assert negatives_per_positive(TrainerConfig(num_negatives=16), 16) == 16
    assert negatives_per_positive(TrainerConfig(num_negatives=4), None) == 4
    with pytest.raises(ValueError, match=r"trainer.num_negatives=4: leave .* at 1 .* set it to 16"):
        negatives_per_positive(TrainerConfig(num_negatives=4), 16)


def test_mixgcf_beats_most_popular_on_lastfm_and_logs_its_terms(tmp_path):
    """Five epochs at lr 5e-3 with the default 16 candidates, drawn by the trainer's sampler
    because the model requires them (trainer.num_negatives left at its default 1)."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "model=mixgcf",  # trainer.num_negatives stays 1: the model's n_negs is drawn
                "logger=none",
                "threads=1",
                "trainer.progress=false",
                "trainer.epochs=5",
                "trainer.eval_every=5",
                "trainer.lr=5e-3",
            ],
        )
    res = run(cfg, tmp_path)
    model, pop = res["test"]["recall@20"], res["baselines"]["most_popular"]["recall@20"]
    assert model > pop, (model, pop)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records and all({"bpr", "reg"} <= set(r["losses"]) for r in records)
