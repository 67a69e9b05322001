"""FM: the O(k·n) training formula and the augmented inner product against the O(n²) pairwise
sum of Rendle (2010) Eq. 1, the loss terms, and training on lastfm past most-popular."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from sslrec.__main__ import config_dir
from sslrec.data import Batch
from sslrec.evaluation.ranker import rank_top_k
from sslrec.losses import AlignUniformLoss, L2Reg, total
from sslrec.models.fm import FM, FeatureBag
from sslrec.run import run

NU, NI, FU, FI, K = 4, 6, 3, 5, 3


def sparse(dense: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(dense).to_sparse_csr()


def features(seed: int, values: bool) -> tuple[np.ndarray, np.ndarray]:
    """Random user ``[NU, FU]`` and item ``[NI, FI]`` feature matrices (some rows empty); binary,
    or with real values ``x_j`` (FM's general case, which the binary files are a part of)."""
    rng = np.random.default_rng(seed)
    xu = (rng.random((NU, FU)) < 0.5).astype(np.float32)
    xi = (rng.random((NI, FI)) < 0.4).astype(np.float32)
    xu[1] = 0.0
    if values:
        xu *= rng.uniform(-2, 2, xu.shape).astype(np.float32)
        xi *= rng.uniform(-2, 2, xi.shape).astype(np.float32)
    return xu, xi


def random_fm(seed: int = 0, values: bool = False, with_features: bool = True, **kw) -> FM:
    xu, xi = features(seed, values)
    model = FM(
        NU,
        NI,
        sparse(xu) if with_features else None,
        sparse(xi) if with_features else None,
        embedding_dim=K,
        **kw,
    ).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # biases too (they start at 0)
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def pairwise_reference(model: FM, u: int, i: int) -> float:
    """Rendle (2010) Eq. 1 over the explicit feature vector ``x = [onehot(u), onehot(i),
    x_user(u), x_item(i)]``: ``w_0 + Σ w_j x_j + Σ_{j < j'} ⟨v_j, v_j'⟩ x_j x_j'``, O(n²)."""

    def table(name):
        return getattr(model, name).weight.detach().numpy() if hasattr(model, name) else None

    def dense(bag: FeatureBag, rows: int) -> np.ndarray:
        out = np.zeros((rows, bag.n_features))
        for r in range(rows):
            lo, hi = int(bag.indptr[r]), int(bag.indptr[r + 1])
            out[r, bag.indices[lo:hi].numpy()] = bag.values[lo:hi].double().numpy()
        return out

    x_parts, w_parts, v_parts = [np.eye(NU)[u], np.eye(NI)[i]], [], []
    w_parts += [table("user_bias")[:, 0], table("item_bias")[:, 0]]
    v_parts += [table("user_embedding"), table("item_embedding")]
    if model.user_bag.n_features:
        x_parts.append(dense(model.user_bag, NU)[u])
        w_parts.append(table("user_feature_bias")[:, 0])
        v_parts.append(table("user_feature_embedding"))
    if model.item_bag.n_features:
        x_parts.append(dense(model.item_bag, NI)[i])
        w_parts.append(table("item_feature_bias")[:, 0])
        v_parts.append(table("item_feature_embedding"))
    x, w, v = np.concatenate(x_parts), np.concatenate(w_parts), np.concatenate(v_parts)
    out = float(model.global_bias.detach()) + float(w @ x)
    for j, jj in itertools.combinations(range(len(x)), 2):
        out += float(v[j] @ v[jj]) * x[j] * x[jj]
    return out


@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("with_features", [True, False])
def test_fm_formula_and_augmented_inner_product_equal_the_pairwise_sum(values, with_features):
    model = random_fm(values=values, with_features=with_features)
    ref = np.array([[pairwise_reference(model, u, i) for i in range(NI)] for u in range(NU)])
    users = torch.arange(NU).repeat_interleave(NI)
    items = torch.arange(NI).repeat(NU)
    with torch.no_grad():
        canonical = model.score(users, items).view(NU, NI).numpy()
        user_aug, item_aug = model.embeddings()
        scorer_full = model.scorer().full_scores(torch.arange(NU)).numpy()
    np.testing.assert_allclose(canonical, ref, rtol=1e-10, atol=1e-10)
    assert user_aug.shape == (NU, K + 2) and item_aug.shape == (NI, K + 2)
    np.testing.assert_allclose((user_aug @ item_aug.t()).numpy(), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(scorer_full, ref, rtol=1e-10, atol=1e-10)
    assert FM.inner_product


def test_fm_without_features_is_biased_mf():
    model = random_fm(with_features=False)
    u, i = torch.tensor([0, 3, 2]), torch.tensor([5, 1, 1])
    want = (
        model.global_bias
        + model.user_bias(u)[:, 0]
        + model.item_bias(i)[:, 0]
        + (model.user_embedding(u) * model.item_embedding(i)).sum(-1)
    )
    torch.testing.assert_close(model.score(u, i), want)


def test_k_negatives_score_like_single_ones():
    model = random_fm()
    users = torch.tensor([0, 1, 3])
    negs = torch.tensor([[0, 5], [2, 2], [4, 1]])
    got = model.score(users, negs)
    for j in range(2):
        torch.testing.assert_close(got[:, j], model.score(users, negs[:, j]))


@pytest.mark.parametrize("apply_to", ["ego", "propagated"])
def test_bpr_and_reg_terms_equal_direct_formulas(apply_to):
    model = random_fm(reg=L2Reg(weight=0.1, apply_to=apply_to))
    batch = Batch(torch.tensor([0, 1, 3]), torch.tensor([2, 3, 5]), torch.tensor([1, 0, 4]))
    terms = model.loss(batch)
    pos, neg = model.score(batch.users, batch.pos), model.score(batch.users, batch.neg)
    torch.testing.assert_close(terms["bpr"].value, -F.logsigmoid(pos - neg).mean())
    if apply_to == "ego":
        rows = [
            model.user_embedding(batch.users),
            model.item_embedding(batch.pos),
            model.item_embedding(batch.neg),
        ]
    else:
        rows = [
            model.field("user", batch.users)[0],
            model.field("item", batch.pos)[0],
            model.field("item", batch.neg)[0],
        ]
    want = 0.1 * sum(0.5 * r.pow(2).sum() for r in rows) / 3
    torch.testing.assert_close(terms["reg"].value, want)
    total(terms).backward()
    assert model.item_feature_embedding.weight.grad.abs().sum() > 0


def test_representation_losses_see_the_augmented_vectors():
    model = random_fm(loss=AlignUniformLoss())
    batch = Batch(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    assert {"align", "uniform"} <= set(model.loss(batch))


def test_ranking_uses_the_inner_product_fast_path():
    import scipy.sparse as sp

    model = random_fm(seed=2)
    exclude = sp.csr_matrix((NU, NI))
    with torch.no_grad():
        ranked = rank_top_k(model.scorer(), np.arange(NU), exclude, 3)
        brute = torch.tensor(
            [[pairwise_reference(model, u, i) for i in range(NI)] for u in range(NU)]
        )
    assert torch.equal(ranked, torch.topk(brute, 3, dim=1).indices)


# -- end to end ------------------------------------------------------------------------------
def run_config(tmp_path, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["logger=none", "trainer.progress=false", *overrides])
    return run(cfg, tmp_path / "run")


def test_fm_beats_most_popular_on_lastfm(tmp_path):
    res = run_config(
        tmp_path, "model=fm", "trainer.epochs=5", "trainer.eval_every=5", "trainer.lr=1e-2"
    )
    assert res["scoring"] == "inner_product"
    model, pop = res["test"]["recall@20"], res["baselines"]["most_popular"]["recall@20"]
    assert model > 1.5 * pop, (model, pop)


def test_fm_trains_on_a_custom_dataset_with_side_features(tmp_path, tiny_dataset_dir):
    rng = np.random.default_rng(0)
    lines = [
        f"{i} " + " ".join(f"g{g}" for g in rng.choice(5, 2, replace=False)) for i in range(60)
    ]
    (tiny_dataset_dir / "item_features.txt").write_text("\n".join(lines) + "\n")
    (tiny_dataset_dir / "user_features.txt").write_text("0 a\n7 a b\n")
    res = run_config(
        tmp_path,
        "dataset=custom",
        f"dataset.path={tiny_dataset_dir}",
        "model=fm",
        "trainer.epochs=2",
        "trainer.eval_every=1",
    )
    emb = np.load(tmp_path / "run" / "embeddings.npz")
    assert emb["user"].shape == (40, 66) and emb["item"].shape == (60, 66)  # k + 2
    assert 0 <= res["test"]["recall@20"] <= 1
