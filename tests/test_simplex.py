"""SimpleX: one step's terms against a float64 reference written with explicit loops (history
lists, softmax, cosines, CCL), the official conventions one by one, and a short lastfm run."""

from __future__ import annotations

import json
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslrec.data import Batch
from sslrec.devices import accelerator_paths
from sslrec.losses import BPRLoss, CCLLoss, RankingBatch, breakdown, ccl_loss, total
from sslrec.models.simplex import SimpleX
from sslrec.run import run
from tests.conftest import compose_quiet
from tests.reference import random_graph

NU, NI, D = 6, 9, 4
USERS = torch.tensor([0, 3, 3, 5, 1])
NEG = torch.tensor([[5, 4, 6], [4, 3, 2], [6, 6, 0], [3, 1, 2], [3, 8, 7]])


@pytest.fixture(scope="module")
def graph():
    u, i = random_graph(NU, NI, 0.6, seed=3)
    assert np.bincount(u, minlength=NU).min() >= 2  # every user has a history besides a target
    return torch.from_numpy(u), torch.from_numpy(i)


def _pos(graph) -> torch.Tensor:
    """A training item of each batch user (its last one, the second one for repeats)."""
    u, i = graph
    out, seen = [], {}
    for user in USERS.tolist():
        items = sorted(i[u == user].tolist())
        seen[user] = seen.get(user, 0) + 1
        out.append(items[-seen[user]])
    return torch.tensor(out)


def _model(graph, **kw) -> SimpleX:
    torch.manual_seed(0)
    kw = {"embedding_dim": D, "gamma": 0.4, "dropout": 0.0, "num_negatives": None} | kw
    model = SimpleX(NU, NI, *graph, **kw)
    with torch.no_grad():  # O(1) embeddings instead of 1e-4: no cosine near a tie
        for table in model.tables():
            table.normal_()
    return model


# --------------------------------------------------------------------------------------------
# The float64 reference
# --------------------------------------------------------------------------------------------


def _histories(graph, users, targets, max_history):
    u, i = graph
    out = []
    for b, user in enumerate(users.tolist()):
        items = sorted(i[u == user].tolist())
        if targets is not None:
            items.remove(int(targets[b]))
        out.append(items[-max_history:] if max_history else items)
    return out


def _d(x: torch.Tensor) -> torch.Tensor:
    return x.detach().double()


def _user_vector(model: SimpleX, user: int, history: list[int]) -> torch.Tensor:
    e_u = _d(model.user_embedding.weight[user])
    g = model.gamma
    if g == 1:
        return e_u
    table = _d(model.history_table())
    w_v = _d(model.W_v.weight)
    if not history:
        agg = torch.zeros(D, dtype=torch.float64)
    elif model.aggregator == "mean":
        agg = sum(table[j] for j in history) / len(history)
    else:
        w_k, b_k = _d(model.W_k.weight), _d(model.W_k.bias)
        query = e_u if model.aggregator == "user_attention" else _d(model.w_q)[:, 0]
        logits = [torch.tanh(w_k @ table[j] + b_k) @ query for j in history]
        den = sum(torch.exp(s) for s in logits)
        if model.attention_padding:  # official: each padding slot adds exp(0) = 1
            den = den + (model.max_history - len(history))
        agg = sum(torch.exp(s) / den * table[j] for s, j in zip(logits, history, strict=True))
    return g * e_u + (1 - g) * (w_v @ agg)


def _reference(model, graph, users, pos, neg, mask, loss: CCLLoss, reg: float):
    items = _d(model.item_embedding.weight)
    hist = _histories(graph, users, pos, model.max_history)
    per_user = []
    for b, user in enumerate(users.tolist()):
        v = _user_vector(model, user, hist[b])
        u_hat = v / v.norm() * mask[b]
        s_pos = u_hat @ (items[pos[b]] / items[pos[b]].norm())
        s_neg = torch.stack([u_hat @ (items[j] / items[j].norm()) for j in neg[b].tolist()])
        w = len(s_neg) if loss.negative_weight is None else loss.negative_weight
        # official relu(1 − s⁺): under dropout s⁺ may exceed 1
        per_user.append(torch.relu(1 - s_pos) + w * (s_neg - loss.margin).clamp(min=0).mean())
    ccl = sum(per_user) / len(per_user)
    tables = sum(_d(t).pow(2).sum() for t in model.tables())
    return ccl, reg / 2 * tables


def _close(got: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=1e-6)


CASES = {
    "mean": {},
    "mean_truncated": {"max_history": 2},
    "user_attention_padded": {
        "aggregator": "user_attention",
        "max_history": 3,
        "attention_padding": True,
    },
    "self_attention_own_table": {"aggregator": "self_attention", "share_embedding": False},
    "mf_ccl": {"gamma": 1.0},
}


@pytest.mark.parametrize("path", ["host", "accelerator"])
@pytest.mark.parametrize("case", list(CASES))
def test_one_step_terms_equal_the_reference(graph, case, path):
    """Both paths: the host's flat history list and the accelerator's ``[B, W]`` slots (run on
    the CPU, :func:`~sslrec.devices.accelerator_paths`)."""
    loss = CCLLoss(margin=0.2, negative_weight=1.5)
    model = _model(graph, loss=loss, embedding_reg=0.01, **CASES[case])
    pos = _pos(graph)
    with accelerator_paths() if path == "accelerator" else nullcontext():
        out = breakdown(model.loss(Batch(USERS, pos, NEG)))
    assert list(out) == ["ccl", "reg", "total"]
    ones = torch.ones(len(USERS), D, dtype=torch.float64)
    ccl, reg = _reference(model, graph, USERS, pos, NEG, ones, loss, 0.01)
    assert ccl > 0.05  # the margin is active on some negatives
    _close(out["ccl"], ccl)
    _close(out["reg"], reg)
    _close(out["total"], ccl + reg)


@pytest.mark.parametrize("aligned", [False, True])
def test_dropout_and_negatives_redrawn_from_the_seed(graph, aligned):
    """Official: k uniform negatives (torch.randint over every item, positives allowed), then
    dropout on the normalised user vector; the reference redraws both from the same seed.
    ``aligned``: positives equal to their users' vectors, so that dropout lifts some ``s⁺``
    above 1, where the official ``relu(1 − s⁺)`` is 0."""
    k, p = 4, 0.5
    loss = CCLLoss(margin=0.1)  # w = k
    model = _model(graph, loss=loss, dropout=p, num_negatives=k, gamma=1.0 if aligned else 0.4)
    pos = _pos(graph)
    if aligned:
        with torch.no_grad():
            model.item_embedding.weight[pos] = model.user_embedding.weight[USERS]
    torch.manual_seed(5)
    out = breakdown(model.loss(Batch(USERS, pos, NEG[:, :1])))
    torch.manual_seed(5)
    neg = torch.randint(0, NI, (len(USERS), k))
    mask = torch.empty(len(USERS), D).bernoulli_(1 - p).double() / (1 - p)
    assert (mask == 0).any()
    ccl, _ = _reference(model, graph, USERS, pos, neg, mask, loss, 0.0)
    _close(out["ccl"], ccl)
    if aligned:
        u_hat = F.normalize(_d(model.user_embedding.weight[USERS]), dim=1) * mask
        i_hat = F.normalize(_d(model.item_embedding.weight[pos]), dim=1)
        assert ((u_hat * i_hat).sum(1) > 1).any()


def test_ccl_loss_keeps_the_official_relu_on_the_positive_term():
    """The fix in ``sslrec.losses.cosine.ccl_loss``: ``relu(1 − s⁺)`` as the official
    ``CosineContrastiveLoss``; it was ``1 − s⁺``, −0.25 here, for SimpleX's score 1.25."""
    value = ccl_loss(torch.tensor([1.25, 0.5]), torch.tensor([[0.0], [0.95]]), 0.9, None, "sum")
    assert value.item() == pytest.approx(0.0 + 0.5 + 0.05)


def test_ccl_reads_the_scores_not_renormalised_representations(graph):
    """Under dropout ``dropout(û)·î`` is not a cosine; CCLLoss on the representations would
    re-normalise ``dropout(û)``. Without dropout both agree."""
    pos = _pos(graph)
    for p in (0.0, 0.5):
        model = _model(graph, dropout=p, loss=CCLLoss(margin=0.0))
        torch.manual_seed(1)
        got = model.loss(Batch(USERS, pos, NEG))["ccl"].value
        torch.manual_seed(1)
        u = F.dropout(F.normalize(model.user_vectors(USERS, pos), dim=-1), p)
        i_hat = F.normalize(model.item_embedding.weight, dim=-1)
        ranked = RankingBatch(
            pos_scores=torch.zeros(len(USERS)),
            neg_scores=torch.zeros(NEG.shape),
            user=u,
            pos=i_hat[pos],
            neg=i_hat[NEG],
        )
        on_cosines = CCLLoss(margin=0.0)(ranked)
        assert torch.allclose(got, on_cosines, rtol=1e-5) == (p == 0.0)


def test_both_scoring_paths_give_the_same_scores(graph):
    model = _model(graph)
    torch.manual_seed(3)
    u = F.normalize(torch.randn(len(USERS), D), dim=-1)
    item_hat = F.normalize(model.item_embedding.weight, dim=-1).detach()
    pos = _pos(graph)
    for k in (2, 3):  # 9 items > 2·4: gathered rows; ≤ 3·4: one [B, I] matmul
        s_pos, s_neg = model.train_scores(u, item_hat, pos, NEG[:, :k])
        torch.testing.assert_close(s_pos, (u * item_hat[pos]).sum(-1))
        torch.testing.assert_close(s_neg, torch.einsum("bd,bkd->bk", u, item_hat[NEG[:, :k]]))


def test_other_losses_see_the_scores_and_representations(graph):
    model = _model(graph, loss=BPRLoss(), exclude_target=False)  # score() uses whole histories
    pos = _pos(graph)
    out = model.loss(Batch(USERS, pos, NEG))
    assert set(out) == {"bpr", "reg"}
    s = model.score(USERS, torch.cat([pos[:, None], NEG], 1)).detach().double()
    ref = -F.logsigmoid(s[:, :1] - s[:, 1:]).mean()
    _close(out["bpr"].value, ref)


# --------------------------------------------------------------------------------------------
# Conventions one by one
# --------------------------------------------------------------------------------------------


def test_history_lists_leave_out_the_target_and_keep_the_last_items(graph):
    pos = _pos(graph)
    for max_history in (None, 1, 2):
        model = _model(graph, max_history=max_history)
        items, rows, counts = model.history(USERS, pos)
        expected = _histories(graph, USERS, pos, max_history)
        got = [items[rows == b].tolist() for b in range(len(USERS))]
        assert got == expected and counts.tolist() == [len(h) for h in expected]
        assert torch.all(rows[1:] >= rows[:-1])
    full = _model(graph, exclude_target=True).history(USERS)  # ranking: whole history
    assert full[2].tolist() == [len(h) for h in _histories(graph, USERS, None, None)]
    kept = _model(graph, exclude_target=False).history(USERS, pos)
    assert torch.equal(kept[0], full[0])


@pytest.mark.parametrize("exclude_target", [True, False])
@pytest.mark.parametrize("max_history", [None, 1, 2, 3, 100])
def test_padded_history_slots_hold_the_history_lists(graph, max_history, exclude_target):
    """The accelerator's ``[B, W]`` slots keep, in order, exactly the flat lists' items."""
    pos = _pos(graph)
    model = _model(graph, max_history=max_history, exclude_target=exclude_target)
    for targets in (pos, None):
        items, rows, _ = model.history(USERS, targets)
        slots, keep = model.padded_history(USERS, targets)
        width = model.history_width(targets is not None and exclude_target)
        assert slots.shape == keep.shape == (len(USERS), width)
        for b in range(len(USERS)):
            assert slots[b][keep[b]].tolist() == items[rows == b].tolist()


def test_mean_aggregation_equals_a_normalised_sparse_history_matrix(graph):
    """``agg`` of the batch = ``(H / |H|) @ E`` with ``H`` the ``[B, I]`` 0/1 history matrix."""
    model = _model(graph)
    pos = _pos(graph)
    h = torch.zeros(len(USERS), NI, dtype=torch.float64)
    for b, items in enumerate(_histories(graph, USERS, pos, None)):
        h[b, items] = 1.0
    ref = (h / h.sum(1, keepdim=True)) @ _d(model.item_embedding.weight) @ _d(model.W_v.weight).T
    uid = model.user_embedding(USERS)
    _close(model.aggregate(uid, USERS, pos), ref)


def test_ranking_is_the_cosine_with_the_full_history_and_no_dropout(graph):
    model = _model(graph, dropout=0.5, aggregator="user_attention")
    model.train()
    scores = model.scorer().full_scores(torch.arange(NU))
    items = F.normalize(_d(model.item_embedding.weight), dim=1)
    hist = _histories(graph, torch.arange(NU), None, None)
    users = torch.stack([_user_vector(model, u, hist[u]) for u in range(NU)])
    _close(scores, F.normalize(users, dim=1) @ items.T)
    assert torch.allclose(model.scorer().full_scores(torch.arange(NU)), scores)


def test_model_negatives_are_uniform_and_keep_positives(graph):
    model = _model(graph, num_negatives=2000)
    batch = Batch(USERS, _pos(graph), NEG)
    torch.manual_seed(0)
    neg = model.negatives(batch)
    assert neg.shape == (len(USERS), 2000)
    counts = torch.bincount(neg.flatten(), minlength=NI).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.05
    u, i = graph
    positives = set(i[u == int(USERS[0])].tolist())
    assert positives & set(neg[0].tolist())  # the official sampler does not reject them
    assert torch.equal(_model(graph, num_negatives=None).negatives(batch), NEG)


def test_gamma_one_is_mf_ccl_and_skips_the_history(graph):
    model = _model(graph, gamma=1.0)
    pos = _pos(graph)
    total(model.loss(Batch(USERS, pos, NEG))).backward()
    assert model.W_v.weight.grad is None
    u = F.normalize(model.user_embedding.weight, dim=-1)
    i = F.normalize(model.item_embedding.weight, dim=-1)
    torch.testing.assert_close(model.scorer().full_scores(torch.arange(NU)), u @ i.T)


def test_reg_covers_whole_tables_not_batch_rows(graph):
    shared = _model(graph, embedding_reg=2.0)
    own = _model(graph, embedding_reg=2.0, share_embedding=False)
    assert len(shared.tables()) == 2 and len(own.tables()) == 3
    for model in (shared, own):
        ref = sum(_d(t).pow(2).sum() for t in model.tables())  # λ/2 · Σ‖E‖² with λ = 2
        _close(model.reg_loss(), ref)
    assert _model(graph, embedding_reg=0.0).reg_loss().item() == 0.0


def test_init_is_the_official_one(graph):
    torch.manual_seed(0)
    model = SimpleX(300, 400, *graph, init_std=1e-4)
    for table in model.tables():
        assert table.std().item() == pytest.approx(1e-4, rel=0.02)
    assert model.W_k is None and model.w_q is None  # mean: no attention parameters


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": 1.5}, "gamma"),
        ({"aggregator": "max"}, "aggregator"),
        ({"max_history": 0}, "max_history"),
        ({"attention_padding": True, "aggregator": "user_attention"}, "attention_padding"),
        ({"attention_padding": True, "max_history": 5}, "attention_padding"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_negatives": 0}, "num_negatives"),
        ({"embedding_reg": -1.0}, "embedding_reg"),
    ],
)
def test_constructor_checks(graph, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleX(NU, NI, *graph, **kwargs)


# --------------------------------------------------------------------------------------------
# Configs and lastfm
# --------------------------------------------------------------------------------------------


_compose = compose_quiet  # the run config with no logger and no progress bar


OFFICIAL = {  # the BARS configs (config/<expid>/model_config.yaml)
    # expid: (lr, batch, monitor), (k, aggregator, g, λ), (m, w), (max_history, padding, share)
    "simplex_yelp2018": (
        (1e-4, 512, "recall@20"), (1000, "mean", 1.0, 1e-8), (0.9, 150), (500, False, True)
    ),
    "simplex_gowalla": (
        (1e-4, 256, "ndcg@20"), (2000, "user_attention", 0.8, 1e-7), (0.9, 250), (810, True, False)
    ),
    "mfccl_yelp2018": (
        (1e-4, 512, "recall@20"), (800, "mean", 1.0, 1e-9), (0.9, 150), (None, False, True)
    ),
    "mfccl_gowalla": (
        (1e-4, 256, "recall@20"), (800, "mean", 1.0, 1e-8), (0.9, 150), (None, False, True)
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_experiments_hold_the_published_configs(name):
    trainer_settings, model_settings, ccl, history = OFFICIAL[name]
    cfg = _compose(f"+experiment={name}")
    model, trainer = cfg.model, cfg.trainer
    assert model._target_ == "sslrec.models.simplex.SimpleX"
    assert (trainer.lr, trainer.batch_size, trainer.metric) == trainer_settings
    assert (model.num_negatives, model.aggregator, model.gamma, model.embedding_reg) == (
        model_settings
    )
    assert (cfg.loss.margin, cfg.loss.negative_weight) == ccl
    assert (model.max_history, model.attention_padding, model.share_embedding) == history
    assert (model.dropout, model.init_std, model.embedding_dim) == (0.1, 1e-4, 64)
    assert trainer.protocol == "paper"  # the official code selects on test
    assert (trainer.epochs, trainer.eval_every, trainer.patience) == (100, 1, 3)


def test_simplex_on_lastfm_beats_most_popular_and_logs_its_terms(tmp_path):
    cfg = _compose("threads=1", "model=simplex", "trainer.epochs=3", "trainer.eval_every=3")
    res = run(cfg, tmp_path / "run")
    assert res["scoring"] == "inner_product"
    model, pop = res["test"]["recall@20"], res["baselines"]["most_popular"]["recall@20"]
    assert model > pop, (model, pop)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records and all({"ccl", "reg", "total"} <= set(r["losses"]) for r in records)
