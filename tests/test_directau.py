"""DirectAU: one step's terms against a dense float64 computation, the official conventions
(raw inner-product ranking, negatives unused, MF encoder, init), and a short lastfm run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sslrec.data import Batch
from sslrec.graph import normalized_adjacency
from sslrec.losses import AlignUniformLoss, L2Reg, breakdown
from sslrec.models.directau import DirectAU
from sslrec.run import run
from tests.conftest import compose_quiet
from tests.reference import dense_normalized_adjacency, random_graph

NU, NI, D = 6, 8, 4
# user 3 twice and item 2 twice: pairs at distance 0 count in the uniformity means
USERS = torch.tensor([0, 3, 3, 5, 1])
POS = torch.tensor([2, 7, 1, 2, 0])
NEG = torch.tensor([5, 4, 6, 3, 3])


@pytest.fixture(scope="module")
def graph():
    u, i = random_graph(NU, NI, 0.5, seed=2)
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    dense = torch.from_numpy(dense_normalized_adjacency(u, i, NU, NI))
    return normalized_adjacency(ut, it, NU, NI), dense


def _model(graph, num_layers=2, gamma=2.0, reg=None, init="xavier_normal") -> DirectAU:
    torch.manual_seed(0)
    return DirectAU(
        n_users=NU,
        n_items=NI,
        adjacency=graph[0],
        embedding_dim=D,
        num_layers=num_layers,
        loss=AlignUniformLoss(gamma=gamma),
        reg=reg or L2Reg(weight=0.0),
        init=init,
    )


def _final(model: DirectAU, dense: torch.Tensor) -> torch.Tensor:
    """``mean_k Â^k E⁰`` in float64, ``[U+I, d]``."""
    x = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    layers = [x]
    for _ in range(model.num_layers):
        layers.append(dense @ layers[-1])
    return sum(layers) / len(layers)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm()


def _uniformity(rows: list[torch.Tensor]) -> torch.Tensor:
    """``log((2 / (B(B−1))) Σ_{a<b} exp(−2 ‖x̃_a − x̃_b‖²))`` by an explicit double loop."""
    terms = [
        torch.exp(-2 * (_unit(rows[a]) - _unit(rows[b])).pow(2).sum())
        for a in range(len(rows))
        for b in range(a + 1, len(rows))
    ]
    return torch.log(sum(terms) / len(terms))


def _reference(model: DirectAU, dense: torch.Tensor, gamma: float):
    final = _final(model, dense)
    u = [final[int(x)] for x in USERS]
    p = [final[NU + int(x)] for x in POS]
    align = sum((_unit(a) - _unit(b)).pow(2).sum() for a, b in zip(u, p, strict=True)) / len(u)
    uniform = (_uniformity(u) + _uniformity(p)) / 2
    return align, uniform, align + gamma * uniform


def _close(got: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("num_layers", [0, 2])
def test_one_step_terms_equal_the_dense_reference(graph, num_layers):
    model = _model(graph, num_layers=num_layers, gamma=2.0)
    out = breakdown(model.loss(Batch(USERS, POS, NEG)))
    align, uniform, total = _reference(model, graph[1], 2.0)
    assert list(out) == ["align", "uniform", "reg", "total"]
    _close(out["align"], align)
    _close(out["uniform"], uniform)
    assert out["reg"].item() == 0.0
    _close(out["total"], total)


def test_uniformity_counts_duplicate_rows_as_pairs_at_distance_zero(graph):
    """Official ``torch.pdist`` keeps a repeated user as a pair with ``exp(0) = 1``: the loss
    differs from the one over unique users."""
    model = _model(graph)
    final = _final(model, graph[1])
    with_dups = _uniformity([final[int(x)] for x in USERS])
    unique = _uniformity([final[int(x)] for x in USERS.unique()])
    assert not torch.isclose(with_dups, unique)
    _close(model.loss(Batch(USERS, POS, NEG))["uniform"].value, _reference(model, graph[1], 2)[1])


def test_negatives_are_never_read(graph):
    model = _model(graph)
    a = breakdown(model.loss(Batch(USERS, POS, NEG)))
    b = breakdown(model.loss(Batch(USERS, POS, torch.randint(0, NI, (len(USERS), 7)))))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_selfrec_reg_on_the_propagated_rows(graph):
    reg = L2Reg(weight=0.1, squared=False, apply_to="propagated", include_negative=False)
    model = _model(graph, reg=reg)
    out = breakdown(model.loss(Batch(USERS, POS, NEG)))
    final = _final(model, graph[1])
    ref = 0.1 * (final[USERS].norm() + final[NU + POS].norm()) / len(USERS)
    _close(out["reg"], ref)
    _close(out["total"], _reference(model, graph[1], 2.0)[2] + ref)


def test_ranking_is_the_raw_inner_product_of_unnormalised_representations(graph):
    model = _model(graph)
    final = _final(model, graph[1])
    users = torch.arange(NU)
    expected = final[:NU] @ final[NU:].T
    _close(model.scorer().full_scores(users), expected)
    # not the cosine the loss trains on
    cos = (
        torch.nn.functional.normalize(final[:NU], dim=1)
        @ torch.nn.functional.normalize(final[NU:], dim=1).T
    )
    assert not torch.allclose(expected, cos, rtol=1e-3)


def test_init_options():
    """``xavier_normal`` (official RecBole) draws beyond xavier_uniform's bound ``√(6/(U+d))``;
    both have variance ``2/(fan_in + fan_out)``."""
    n, d = 2000, 64
    adj = normalized_adjacency(torch.tensor([0]), torch.tensor([0]), n, n)
    bound = math.sqrt(6 / (n + d))
    for init in ("xavier_normal", "xavier_uniform"):
        torch.manual_seed(0)
        w = DirectAU(n_users=n, n_items=n, adjacency=adj, init=init).user_embedding.weight
        assert w.std().item() == pytest.approx(math.sqrt(2 / (n + d)), rel=0.02)
        assert (w.abs().max().item() > bound) == (init == "xavier_normal")
    with pytest.raises(ValueError, match="model.init"):
        DirectAU(n_users=n, n_items=n, adjacency=adj, init="kaiming")


def test_defaults_are_the_official_loss_and_no_reg_term():
    import inspect

    params = inspect.signature(DirectAU.__init__).parameters
    assert params["loss"].default == AlignUniformLoss(gamma=1.0)
    assert params["reg"].default.weight == 0.0
    assert params["init"].default == "xavier_normal"


_compose = compose_quiet  # the run config with no logger and no progress bar


@pytest.mark.parametrize(
    ("experiment", "gamma", "batch", "layers"),
    [("directau_yelp2018", 1.0, 1024, 0), ("directau_gowalla", 5.0, 1024, 0)],
)
def test_experiments_hold_the_official_settings(experiment, gamma, batch, layers):
    cfg = _compose(f"+experiment={experiment}")
    assert cfg.model._target_ == "sslrec.models.directau.DirectAU"
    assert cfg.loss.gamma == gamma and cfg.trainer.batch_size == batch
    assert cfg.model.num_layers == layers and cfg.trainer.weight_decay == 1e-6
    assert cfg.model.reg.weight == 0 and cfg.trainer.metric == "ndcg@20"


def test_the_selfrec_experiment_holds_selfrecs_settings():
    """``directau_selfrec_yelp2018``: the run behind the figure published on this split
    (SELFRec conf/DirectAU.yaml, model/graph/DirectAU.py)."""
    cfg = _compose("+experiment=directau_selfrec_yelp2018")
    assert cfg.model._target_ == "sslrec.models.directau.DirectAU"
    assert cfg.model.init == "xavier_uniform" and cfg.trainer.weight_decay == 0
    assert (cfg.trainer.batch_size, cfg.trainer.lr, cfg.trainer.epochs) == (2048, 1e-3, 50)
    assert (cfg.trainer.metric, cfg.trainer.protocol) == ("recall@20", "paper")
    assert cfg.trainer.patience >= cfg.trainer.epochs  # SELFRec trains every epoch
    reg = cfg.model.reg
    assert (reg.weight, reg.squared, reg.apply_to, reg.include_negative) == (
        1e-4,
        False,
        "propagated",
        False,
    )
    assert cfg.loss.gamma == 2 and cfg.model.num_layers == 3


def test_directau_on_lastfm_beats_most_popular_and_logs_its_terms(tmp_path):
    cfg = _compose("threads=1", "model=directau", "trainer.epochs=3", "trainer.eval_every=3")
    res = run(cfg, tmp_path / "run")
    assert res["scoring"] == "inner_product"
    model, pop = res["test"]["recall@20"], res["baselines"]["most_popular"]["recall@20"]
    assert model > 2 * pop, (model, pop)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records and all(
        {"align", "uniform", "reg", "total"} <= set(r["losses"]) for r in records
    )
    assert all(np.isfinite(r["losses"]["uniform"]) for r in records)
