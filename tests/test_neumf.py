"""NCF (GMF, MLP, NeuMF): the forward against a numpy loop, the tiled full-ranking scorer against
the per-pair forward, pre-training's weight copy, and training on lastfm past most-popular."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sslrec.__main__ import config_dir
from sslrec.data import Batch, DatasetSpec
from sslrec.evaluation.ranker import rank_top_k
from sslrec.factory import build_model
from sslrec.io import load_torch, save_text, save_torch
from sslrec.losses import BPRLoss, ContrastiveLoss, L2Reg, total
from sslrec.models.neumf import (
    GMF,
    MLP,
    TILE_ITEMS,
    TILE_USERS,
    NeuMF,
    TowerScorer,
    tower_block_users,
)
from sslrec.run import load_data, run


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``model`` in float64 with every parameter redrawn N(0, 0.5²) (ReLUs half active)."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def reference_logit(model, u: int, i: int) -> float:
    """One pair's logit by hand: numpy, one layer at a time, as He et al. (2017) Eq. 12."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    parts = []
    if "gmf_user.weight" in sd:
        parts.append(sd["gmf_user.weight"][u] * sd["gmf_item.weight"][i])
    if "mlp_user.weight" in sd:
        x = np.concatenate([sd["mlp_user.weight"][u], sd["mlp_item.weight"][i]])
        k = 0
        while f"mlp.{k}.weight" in sd:
            x = np.maximum(0.0, sd[f"mlp.{k}.weight"] @ x + sd[f"mlp.{k}.bias"])
            k += 1
        parts.append(x)
    z = np.concatenate(parts)
    return float(sd["prediction.weight"][0] @ z + sd["prediction.bias"][0])


def small(cls, **kw):
    defaults = {
        GMF: {"mf_dim": 3},
        MLP: {"layers": [6, 5, 4, 2]},
        NeuMF: {"mf_dim": 3, "layers": [6, 5, 4, 2]},
    }[cls]
    return randomised(cls(5, 7, **(defaults | kw)))


@pytest.mark.parametrize("cls", [GMF, MLP, NeuMF])
def test_forward_matches_numpy_reference(cls):
    model = small(cls)
    users = torch.tensor([0, 4, 2, 2])
    items = torch.tensor([6, 0, 3, 5])
    got = model.score(users, items)
    ref = [reference_logit(model, int(u), int(i)) for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(got.detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    negs = torch.tensor([[1, 2], [3, 4], [5, 6], [0, 0]])  # [B, k]
    got_k = model.score(users, negs).detach().numpy()
    for b in range(4):
        for j in range(2):
            want = reference_logit(model, int(users[b]), int(negs[b, j]))
            assert got_k[b, j] == pytest.approx(want, abs=1e-12)


def _naive_full(model, users: torch.Tensor) -> torch.Tensor:
    """Every (user, item) pair through the per-pair forward, one user at a time."""
    items = torch.arange(model.n_items)
    return torch.stack([model.score(torch.full_like(items, int(u)), items) for u in users])


@pytest.mark.parametrize("cls", [GMF, MLP, NeuMF])
def test_full_scorer_equals_per_pair_forward(cls):
    # more items than one tile and more users than one tile row, ragged at both ends
    n_items = TILE_ITEMS + 37
    model = randomised(
        cls(TILE_USERS + 3, n_items, **({} if cls is GMF else {"layers": [8, 6, 3]}))
    )
    users = torch.tensor([10, 0, 3, 3, 7, 1, 2, 4, 5, 6, 9])
    with torch.no_grad():
        naive = _naive_full(model, users)
        scorer = model.scorer()
        full = scorer.full_scores(users)
    torch.testing.assert_close(full, naive, rtol=1e-10, atol=1e-10)
    assert full.dtype == torch.float64
    # the scorer's pairwise score agrees with its full scores, for [B] and [B, k] items
    items = torch.randint(0, n_items, (len(users),), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(scorer.score(users, items), full[torch.arange(len(users)), items])
    items_k = torch.randint(0, n_items, (len(users), 4), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        scorer.score(users, items_k), full.gather(1, items_k), rtol=1e-10, atol=1e-10
    )


def test_model_kinds_and_gmf_embeddings_reproduce_the_logits():
    assert GMF.inner_product and not MLP.inner_product and not NeuMF.inner_product
    gmf = small(GMF)
    user, item = gmf.embeddings()
    assert user.shape == (5, 4) and item.shape == (7, 4)  # [p ⊙ h, b] and [q, 1]
    torch.testing.assert_close(user @ item.t(), _naive_full(gmf, torch.arange(5)).detach())
    # NeuMF's embeddings.npz: its towers' tables side by side (GMF first)
    user, item = small(NeuMF).embeddings()
    assert user.shape == (5, 3 + 3) and item.shape == (7, 6)


def test_block_users_bound_the_block_memory():
    widths = [32, 16, 8]  # NeuMF's default tower after the split first layer
    b = tower_block_users(40_981, widths, 4, 256)  # gowalla, float32, 256 MB
    assert 1_000 < b < 2_000
    tile = TILE_USERS * TILE_ITEMS * (32 + 16) * 4
    assert b * 40_981 * 4 + tile <= 256 * 2**20
    assert tower_block_users(40_981, widths, 4, 0.001) == 1
    model = NeuMF(3, 50, eval_memory_mb=0.05)
    assert model.scorer().block_users == tower_block_users(50, widths, 4, 0.05)


def test_ranking_is_the_same_for_any_block_size():
    import scipy.sparse as sp

    model = randomised(NeuMF(12, 40, mf_dim=2, layers=[4, 3]), seed=3)
    exclude = sp.random(12, 40, density=0.2, format="csr", random_state=0)
    users = np.arange(12)
    with torch.no_grad():
        scorer = model.scorer()
        big = rank_top_k(scorer, users, exclude, 10, batch_size=1024)
        scorer.block_users = 5
        small_blocks = rank_top_k(scorer, users, exclude, 10, batch_size=1024)
        ref = _naive_full(model, torch.arange(12))
    ref[torch.from_numpy(exclude.toarray() > 0)] = -torch.inf
    assert torch.equal(big, small_blocks)
    assert torch.equal(big, torch.topk(ref, 10, dim=1).indices)


def test_tower_scorer_handles_a_single_hidden_layer():
    gen = torch.Generator().manual_seed(0)
    a, c = torch.randn(3, 4, generator=gen), torch.randn(5, 4, generator=gen)
    w, b = torch.randn(4, generator=gen), 0.3
    scorer = TowerScorer(a, c, [], w, b)
    want = torch.relu(a[:, None] + c[None]) @ w + b
    torch.testing.assert_close(scorer.full_scores(torch.arange(3)), want)


# -- the objective ---------------------------------------------------------------------------
def test_bce_loss_and_reg_equal_direct_formulas():
    model = small(NeuMF, reg=L2Reg(weight=0.1))
    batch = Batch(
        torch.tensor([0, 1, 4]), torch.tensor([2, 3, 6]), torch.tensor([[0, 1], [5, 5], [1, 2]])
    )
    terms = model.loss(batch)
    pos, neg = model.score(batch.users, batch.pos), model.score(batch.users, batch.neg)
    logits = torch.cat([pos, neg.reshape(-1)])
    labels = torch.cat([torch.ones(3), torch.zeros(6)]).double()
    torch.testing.assert_close(
        terms["bce"].value, F.binary_cross_entropy_with_logits(logits, labels)
    )
    rows = [
        torch.cat([model.gmf_user.weight[batch.users], model.mlp_user.weight[batch.users]], -1),
        torch.cat([model.gmf_item.weight[batch.pos], model.mlp_item.weight[batch.pos]], -1),
        torch.cat([model.gmf_item.weight[batch.neg], model.mlp_item.weight[batch.neg]], -1),
    ]
    want_reg = 0.1 * sum(0.5 * r.pow(2).sum() for r in rows) / 3
    torch.testing.assert_close(terms["reg"].value, want_reg)
    total(terms).backward()  # trains end to end
    assert model.mlp[0].weight.grad is not None and model.gmf_item.weight.grad is not None


def test_any_score_loss_trains_and_representation_losses_refuse_network_models():
    batch = Batch(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    model = small(NeuMF, loss=BPRLoss())
    pos, neg = model.score(batch.users, batch.pos), model.score(batch.users, batch.neg)
    torch.testing.assert_close(model.loss(batch)["bpr"].value, -F.logsigmoid(pos - neg).mean())
    with pytest.raises(ValueError, match="loss=contrastive works on user and item repr"):
        small(MLP, loss=ContrastiveLoss()).loss(batch)
    # GMF is an inner product: its augmented vectors reach such losses, and score exactly
    gmf = small(GMF, loss=ContrastiveLoss())
    assert "contrastive" in gmf.loss(batch)
    u, p, _ = gmf.representations(batch.users, batch.pos, batch.neg)
    torch.testing.assert_close((u * p).sum(-1), gmf.score(batch.users, batch.pos))


def test_constructor_checks():
    with pytest.raises(ValueError, match="even input size"):
        MLP(3, 4, layers=[5, 2])
    with pytest.raises(ValueError, match="at least one"):
        MLP(3, 4, layers=[8])
    with pytest.raises(ValueError, match="alpha"):
        NeuMF(3, 4, alpha=1.5)
    with pytest.raises(ValueError, match="both model.pretrained_gmf and model.pretrained_mlp"):
        NeuMF(3, 4, pretrained_gmf="somewhere")


# -- pre-training ----------------------------------------------------------------------------
def fake_run(folder: Path, model: torch.nn.Module, target: str, best=True) -> Path:
    """A finished run directory: ``checkpoint.pt`` as the trainer writes it, ``config.yaml``.

    The last weights (``model``) are garbage, so that loading them instead of the selected
    ``best_model`` would show; ``best=False`` leaves ``best_model`` unset (no evaluation yet)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    last = {k: torch.full_like(v, 7.0) for k, v in state.items()} if best else state
    save_torch(
        {"model": last, "optimizer": {}, "state": {"best_model": state if best else None}},
        folder / "checkpoint.pt",
    )
    save_text(f"model:\n  _target_: {target}\n", folder / "config.yaml")
    return folder


@pytest.mark.parametrize("alpha", [0.5, 0.3])
@pytest.mark.parametrize("best", [True, False])
def test_pretraining_copies_weights_and_mixes_the_prediction_layer(tmp_path, alpha, best):
    gmf, mlp = small(GMF, mf_dim=3), small(MLP, layers=[6, 5, 4, 2])
    gmf_dir = fake_run(tmp_path / "gmf", gmf, "sslrec.models.neumf.GMF", best)
    mlp_dir = fake_run(tmp_path / "mlp", mlp, "sslrec.models.neumf.MLP", best)
    neumf = NeuMF(
        5,
        7,
        mf_dim=3,
        layers=[6, 5, 4, 2],
        pretrained_gmf=str(gmf_dir),
        pretrained_mlp=str(mlp_dir),
        alpha=alpha,
    ).double()
    torch.testing.assert_close(neumf.gmf_user.weight, gmf.gmf_user.weight)
    torch.testing.assert_close(neumf.mlp_item.weight, mlp.mlp_item.weight)
    torch.testing.assert_close(neumf.mlp[1].weight, mlp.mlp[1].weight)
    # official NeuMF.py at α = 0.5: [0.5 h_GMF, 0.5 h_MLP], bias 0.5 (b_GMF + b_MLP)
    w = torch.cat([alpha * gmf.prediction.weight, (1 - alpha) * mlp.prediction.weight], 1)
    torch.testing.assert_close(neumf.prediction.weight, w)
    torch.testing.assert_close(
        neumf.prediction.bias, alpha * gmf.prediction.bias + (1 - alpha) * mlp.prediction.bias
    )
    users = torch.tensor([0, 1, 2, 3, 4, 4])
    items = torch.tensor([6, 5, 4, 3, 2, 0])
    with torch.no_grad():
        want = alpha * gmf.score(users, items) + (1 - alpha) * mlp.score(users, items)
        torch.testing.assert_close(neumf.score(users, items), want)


def test_pretraining_errors_name_the_run_directory(tmp_path):
    gmf, mlp = small(GMF, mf_dim=3), small(MLP, layers=[6, 5, 4, 2])
    gmf_dir = fake_run(tmp_path / "gmf", gmf, "sslrec.models.neumf.GMF")
    mlp_dir = fake_run(tmp_path / "mlp", mlp, "sslrec.models.neumf.MLP")
    kw = {"mf_dim": 3, "layers": [6, 5, 4, 2]}
    with pytest.raises(FileNotFoundError, match=f"model.pretrained_gmf={tmp_path / 'nope'}: no"):
        NeuMF(5, 7, pretrained_gmf=str(tmp_path / "nope"), pretrained_mlp=str(mlp_dir), **kw)
    with pytest.raises(ValueError, match=rf"pretrained_gmf={gmf_dir}: gmf_user.weight .*\(5, 4\)"):
        NeuMF(
            5,
            7,
            pretrained_gmf=str(gmf_dir),
            pretrained_mlp=str(mlp_dir),
            mf_dim=4,
            layers=[6, 5, 4, 2],
        )
    with pytest.raises(
        ValueError, match=rf"pretrained_mlp={mlp_dir}: mlp_user.weight .*\(5, 4\).*layers=\[8,"
    ):
        NeuMF(
            5,
            7,
            pretrained_gmf=str(gmf_dir),
            pretrained_mlp=str(mlp_dir),
            mf_dim=3,
            layers=[8, 5, 4, 2],
        )
    with pytest.raises(ValueError, match="items"):  # another dataset
        NeuMF(5, 9, pretrained_gmf=str(gmf_dir), pretrained_mlp=str(mlp_dir), **kw)
    # the runs swapped: the error names the key, the run's model and what was expected
    with pytest.raises(ValueError, match=r"gmf_user.weight is missing.*neumf.MLP.*model=gmf"):
        NeuMF(5, 7, pretrained_gmf=str(mlp_dir), pretrained_mlp=str(gmf_dir), **kw)


# -- end to end ------------------------------------------------------------------------------
def run_config(out: Path, *overrides: str) -> dict:
    """One run as ``python -m sslrec OVERRIDES`` would make it, in this process (each
    subprocess would pay torch's and Hydra's start-up)."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["logger=none", "trainer.progress=false", *overrides])
    return run(cfg, out)


def test_neumf_beats_most_popular_on_lastfm(tmp_path):
    """Acceptance: NeuMF with the official sampling (4 negatives, batch 256), 4 epochs on
    lastfm at lr 3e-3 (valid recall@20 0.16 there after 4 epochs, 0.08 at the official 1e-3)."""
    res = run_config(
        tmp_path,
        "+experiment=neumf_lastfm",
        "trainer.epochs=4",
        "trainer.eval_every=4",
        "trainer.lr=3e-3",
    )
    assert res["scoring"] == "model"
    model, pop = res["test"]["recall@20"], res["baselines"]["most_popular"]["recall@20"]
    assert model > 1.5 * pop, (model, pop)


def test_pretraining_steps_run_end_to_end(tmp_path, tiny_dataset_dir):
    """The three steps of conf/experiment/neumf_pretrained_lastfm.yaml, on a tiny dataset: the
    third loads the first two's checkpoints from their run directories."""
    data = [
        f"dataset.path={tiny_dataset_dir}",
        "dataset.name=tiny",
        "dataset.n_users=null",
        "dataset.n_items=null",
        "trainer.epochs=1",
        "trainer.num_negatives=2",
    ]
    runs = {}
    for name in ("gmf", "mlp"):
        res = run_config(tmp_path / name, "+experiment=neumf_lastfm", f"model={name}", *data)
        assert res["scoring"] == ("inner_product" if name == "gmf" else "model")
        runs[name] = tmp_path / name
    overrides = [
        "+experiment=neumf_pretrained_lastfm",
        f"model.pretrained_gmf={runs['gmf']}",
        f"model.pretrained_mlp={runs['mlp']}",
        *data,
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert cfg.trainer.optimizer == "sgd"
    data_ = load_data(
        DatasetSpec(**OmegaConf.to_container(cfg.dataset, resolve=True)), "validation"
    )
    model = build_model(cfg.model, data_, torch.device("cpu"))
    gmf = load_torch(runs["gmf"] / "checkpoint.pt")["state"]["best_model"]
    torch.testing.assert_close(model.gmf_item.weight.detach(), gmf["gmf_item.weight"])
    res = run_config(tmp_path / "neumf", *overrides)
    assert 0 <= res["test"]["recall@20"] <= 1
