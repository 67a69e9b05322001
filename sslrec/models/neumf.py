"""Neural collaborative filtering (He et al., WWW 2017): GMF, MLP and NeuMF.

Three classes over one implementation (:class:`NCF`), with the official code's layer names, so
that a GMF run's and an MLP run's weights load into NeuMF by name (pre-training):

* ``GMF``: ``s(u, i) = h · (p_u ⊙ q_i) + b``.
* ``MLP``: ``s(u, i) = h · φ_L(...φ_1([p_u, q_i])) + b`` with ReLU layers ``φ_k``.
* ``NeuMF``: both towers on their own embeddings, fused by one prediction layer over
  ``[p^G_u ⊙ q^G_i, φ_L(...)]``.

Scores are the prediction layer's **logits** (the paper's ``σ`` is monotone, and BCE takes
logits), so any score-based ranking loss trains them; the default is pointwise BCE, as the
paper. Losses on representations (contrastive, triplet, ccl, directau) refuse MLP and NeuMF,
which score pairs with a network; GMF *is* an inner product, ``⟨[p_u ⊙ h, b], [q_i, 1]⟩``,
so it uses the inner-product fast path, its ``embeddings.npz`` reproduces every score, and it
passes those augmented vectors to such losses.

Official code (hexiangnan/neural_collaborative_filtering; ``/work/notes`` section 7): embeddings
``N(0, 0.01²)``; hidden layers Glorot-uniform with zero bias; prediction layer LeCun-uniform;
``mf_dim = 8``, ``layers = [64, 32, 16, 8]`` (``layers[0]`` is the concatenated MLP input, so
each MLP embedding has ``layers[0] / 2 = 32`` dimensions); BCE with 4 uniform negatives per
positive (rejecting training items: ``trainer.num_negatives=4``), Adam, lr 1e-3, batch 256;
no regularisation. The paper fine-tunes a pre-trained NeuMF with plain SGD
(``trainer.optimizer=sgd``); the official code keeps whatever ``--learner`` says (Adam in its
README). ``conf/experiment/neumf_lastfm.yaml`` and ``neumf_pretrained_lastfm.yaml`` hold both.

Full ranking (:class:`TowerScorer`) never loops over items or pairs in Python and runs in
bounded memory: the MLP's first layer splits into a user part ``A = P W_uᵀ`` and an item part
``C = Q W_iᵀ + b_1``, computed once per evaluation; the per-pair work (``relu(A_u + C_i)``, then
the other layers as batched matmuls) runs over cache-sized tiles of users × items; NeuMF's GMF
half through the prediction layer is one ``(p_u ⊙ h_G) @ Qᵀ`` matmul per block of users; and a
block's ``[b, I]`` scores stay within ``eval_memory_mb`` (``Scorer.block_users``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslrec.data.sampling import Batch
from sslrec.evaluation.scoring import InnerProductScorer, Scorer
from sslrec.io import CHECKPOINT, CONFIG, load_torch
from sslrec.losses import BCELoss, L2Reg, RankingBatch, RankingLoss, Term
from sslrec.models.base import Recommender

#: default memory budget of one block of full-ranking scores (MB)
EVAL_MEMORY_MB = 256


# -- full ranking ----------------------------------------------------------------------------
#: a tile of (user, item) pairs scored at once: TILE_USERS users x TILE_ITEMS items, so that the
#: tower's activations (``[tile, h_1]`` and ``[tile, h_2]``: ~3 MB for 32 and 16 wide layers in
#: float32) stay in cache. Measured on one CPU thread (gowalla's 40,981 items, NeuMF's
#: [32, 16, 8] tower): 81 ns/pair with 8 x 2048 tiles, 120-200 ns/pair with 1-user tiles or a
#: whole [b, I, h_1] block (memory-bound).
TILE_ITEMS = 2048
TILE_USERS = 8


def tower_block_users(
    n_items: int, widths: Sequence[int], element_size: int = 4, memory_mb: float = EVAL_MEMORY_MB
) -> int:
    """The most users whose ``[b, I]`` score block, plus one tile's activations, fits
    ``memory_mb`` (at least 1).

    A block of ``b`` users holds its ``[b, I]`` scores (the ranker masks them and takes the
    top-k in place) and one tile's activations, ``TILE_USERS · TILE_ITEMS · max_k(h_k +
    h_{k+1})`` values, independent of ``b``. E.g. gowalla's 40,981 items in float32: 164 KB per
    user, so the 256 MB default allows ~1,600 users (the evaluator's ``batch_size``, 1,024,
    caps it), and 1.2 billion pairs are scored in ~170 MB blocks.
    """
    pairs = [a + b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    tile = TILE_USERS * min(TILE_ITEMS, n_items) * max([*pairs, widths[-1] + 1]) * element_size
    per_user = n_items * element_size
    return max(1, (int(memory_mb * 2**20) - tile) // per_user)


class TowerScorer:
    """``s(u, i) = b + ⟨g_u, g_i⟩ + w · φ_L(...φ_2(relu(A_u + C_i)))``: a ReLU MLP over the
    concatenation ``[x_u, x_i]`` whose first layer is split into a user part ``A = X_U W_uᵀ``
    and an item part ``C = X_I W_iᵀ + b_1``, precomputed once (a no-grad snapshot).

    Per block of users the per-pair work starts after the first layer: for each tile of
    ``TILE_USERS`` users × ``TILE_ITEMS`` items, ``relu(A[users, :, None] + Cᵀ[None])``
    ``[t_u, h_1, t_i]``, then every later layer as one batched matmul ``W_k @ H`` (activations
    stored feature-major, so the last layer's ``w @ H`` is already the ``[t_u, t_i]`` score
    tile); the optional dot part (NeuMF's GMF half through the prediction layer) is one
    ``[b, m] @ [m, I]`` matmul per block. No Python loop runs per item or per pair.

    Args:
        user_first: ``A`` ``[U, h_1]``.
        item_first: ``C`` ``[I, h_1]`` (first-layer bias included).
        hidden: ``(W_k [h_k, h_{k-1}], b_k [h_k])`` of the layers after the first.
        out_weight: ``w`` ``[h_L]``, the prediction layer's weights on the tower's output.
        out_bias: ``b``, the prediction layer's bias (a scalar tensor or float).
        user_dot, item_dot: ``g_u`` ``[U, m]`` and ``g_i`` ``[I, m]``, or ``None``.
        memory_mb: budget of one block of scores (sets ``block_users``).
    """

    def __init__(
        self,
        user_first: torch.Tensor,
        item_first: torch.Tensor,
        hidden: Sequence[tuple[torch.Tensor, torch.Tensor]],
        out_weight: torch.Tensor,
        out_bias: torch.Tensor | float,
        user_dot: torch.Tensor | None = None,
        item_dot: torch.Tensor | None = None,
        memory_mb: float = EVAL_MEMORY_MB,
    ) -> None:
        # a snapshot: no autograd graph through the parameters, however it is called
        user_first, item_first, out_weight = (
            t.detach() for t in (user_first, item_first, out_weight)
        )
        hidden = [(w.detach(), b.detach()) for w, b in hidden]
        user_dot = None if user_dot is None else user_dot.detach()
        item_dot = None if item_dot is None else item_dot.detach()
        if isinstance(out_bias, torch.Tensor):
            out_bias = out_bias.detach()
        self.user_first = user_first
        self.item_first = item_first
        self.user_first_col = user_first.unsqueeze(-1).contiguous()  # [U, h1, 1]
        self.item_first_t = item_first.t().contiguous()  # [h1, I]
        self.hidden = [(w, b) for w, b in hidden]
        self.hidden_t = [(w.t().contiguous(), b) for w, b in hidden]
        self.out_weight = out_weight.reshape(-1)
        self.out_bias = out_bias
        self.user_dot = user_dot
        self.item_dot = item_dot
        self.item_dot_t = None if item_dot is None else item_dot.t().contiguous()
        self.n_items = item_first.shape[0]
        self.device = item_first.device
        widths = [user_first.shape[1], *(w.shape[0] for w, _ in self.hidden)]
        self.block_users: int | None = tower_block_users(
            self.n_items, widths, user_first.element_size(), memory_mb
        )

    @torch.no_grad()
    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        b, n_items = users.shape[0], self.n_items
        out = torch.empty(b, n_items, dtype=self.item_first.dtype, device=self.device)
        w = self.out_weight.unsqueeze(0)  # [1, h_L]
        for u0 in range(0, b, TILE_USERS):
            a = self.user_first_col[users[u0 : u0 + TILE_USERS]]  # [t_u, h1, 1]
            t_u = a.shape[0]
            layers = [(wk.expand(t_u, -1, -1), bk.view(1, -1, 1)) for wk, bk in self.hidden]
            for i0 in range(0, n_items, TILE_ITEMS):
                h = torch.add(a, self.item_first_t[:, i0 : i0 + TILE_ITEMS]).relu_()
                for wk, bk in layers:
                    h = torch.baddbmm(bk, wk, h).relu_()
                out[u0 : u0 + t_u, i0 : i0 + TILE_ITEMS] = torch.matmul(w, h).squeeze(1)
        if self.user_dot is not None:
            out.addmm_(self.user_dot[users], self.item_dot_t)
        return out.add_(self.out_bias)

    @torch.no_grad()
    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        a = self.user_first[users]
        if items.dim() == 2:
            a = a.unsqueeze(1).expand(-1, items.shape[1], -1)
        h = (a + self.item_first[items]).reshape(-1, self.item_first.shape[1]).relu_()
        for w_t, b in self.hidden_t:
            h = torch.addmm(b, h, w_t).relu_()
        out = (h @ self.out_weight).view(items.shape)
        if self.user_dot is not None:
            g = self.user_dot[users]
            gi = self.item_dot[items]
            out = out + ((g.unsqueeze(1) * gi).sum(-1) if items.dim() == 2 else (g * gi).sum(-1))
        return out + self.out_bias


# -- the models ------------------------------------------------------------------------------
def _expand_like(user_rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``[B, d]`` user rows against items ``[B]`` (as is) or ``[B, k]`` (``[B, k, d]``)."""
    if items.dim() == 2:
        return user_rows.unsqueeze(1).expand(-1, items.shape[1], -1)
    return user_rows


class NCF(Recommender):
    """GMF, MLP and NeuMF in one implementation: a GMF tower when ``mf_dim > 0``, an MLP tower
    when ``layers`` is given, one prediction layer over their concatenated outputs.

    Use :class:`GMF`, :class:`MLP` or :class:`NeuMF` (``model=gmf|mlp|neumf``).

    Args:
        n_users, n_items: see :class:`Recommender`.
        mf_dim: GMF embedding size (0: no GMF tower).
        layers: ``[2d, h_1, ..., h_L]``: ``layers[0]`` is the concatenated MLP input (each MLP
            embedding has ``layers[0] / 2`` dimensions, the official convention), the rest
            the ReLU layers' widths; empty: no MLP tower.
        loss: any score-based ranking loss on the logits (BCE by default, as the paper).
        reg: L2 on the batch's embedding rows (all towers' user, positive and negative rows;
            ``reg.apply_to`` does not apply); weight 0 by default, as the official code.
        init_std: the embeddings' normal init std (official 0.01).
        eval_memory_mb: memory budget of one block of full-ranking scores (MLP/NeuMF).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        mf_dim: int = 8,
        layers: Sequence[int] = (),
        loss: RankingLoss = BCELoss(),  # noqa: B008 (frozen dataclass)
        reg: L2Reg = L2Reg(weight=0.0),
        init_std: float = 0.01,
        eval_memory_mb: float = EVAL_MEMORY_MB,
    ) -> None:
        super().__init__(n_users, n_items)
        layers = [int(w) for w in layers]
        if mf_dim < 0:
            raise ValueError(f"mf_dim must be >= 0, got {mf_dim}")
        if layers and (len(layers) < 2 or layers[0] % 2 or min(layers) < 1):
            raise ValueError(
                f"layers must be [2d, h_1, ..., h_L] with an even input size 2d and at least one "
                f"hidden layer (official [64, 32, 16, 8]), got {layers}"
            )
        if mf_dim == 0 and not layers:
            raise ValueError("an NCF model needs a GMF tower (mf_dim > 0) or an MLP (layers)")
        self.mf_dim = mf_dim
        self.layers = layers
        self.ranking_loss = loss
        self.reg = reg
        self.eval_memory_mb = eval_memory_mb
        out_dim = 0
        if mf_dim:
            self.gmf_user = nn.Embedding(n_users, mf_dim)
            self.gmf_item = nn.Embedding(n_items, mf_dim)
            out_dim += mf_dim
        if layers:
            self.mlp_user = nn.Embedding(n_users, layers[0] // 2)
            self.mlp_item = nn.Embedding(n_items, layers[0] // 2)
            self.mlp = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(layers, layers[1:], strict=False)
            )
            out_dim += layers[-1]
        self.prediction = nn.Linear(out_dim, 1)
        for emb in self._tables():
            nn.init.normal_(emb.weight, std=init_std)
        for lin in getattr(self, "mlp", []):  # Keras 1 Dense default: Glorot uniform, zero bias
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        bound = math.sqrt(3.0 / out_dim)  # Keras lecun_uniform
        nn.init.uniform_(self.prediction.weight, -bound, bound)
        nn.init.zeros_(self.prediction.bias)

    def _tables(self) -> list[nn.Embedding]:
        """``[user, item]`` tables of each tower (GMF first)."""
        out = []
        if self.mf_dim:
            out += [self.gmf_user, self.gmf_item]
        if self.layers:
            out += [self.mlp_user, self.mlp_item]
        return out

    def _split_prediction(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The prediction weights on the GMF part ``[m]`` and on the MLP part ``[h_L]``."""
        w = self.prediction.weight[0]
        m = self.mf_dim
        return (w[:m] if m else None), (w[m:] if self.layers else None)

    def _logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Per-pair forward: ``users`` ``[B]``, ``items`` ``[B]`` or ``[B, k]`` → logits."""
        parts = []
        if self.mf_dim:
            parts.append(_expand_like(self.gmf_user(users), items) * self.gmf_item(items))
        if self.layers:
            x = torch.cat([_expand_like(self.mlp_user(users), items), self.mlp_item(items)], -1)
            for lin in self.mlp:
                x = F.relu(lin(x))
            parts.append(x)
        return self.prediction(torch.cat(parts, -1) if len(parts) > 1 else parts[0]).squeeze(-1)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._logits(users, items)

    def representations(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``(user, pos, neg)`` vectors whose inner products are the scores, or ``None`` for a
        network-scored model (losses on representations then refuse it)."""
        return None

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking loss on the batch's logits, and ``reg`` on its embedding rows."""
        reps = self.representations(batch.users, batch.pos, batch.neg)
        ranked = RankingBatch(
            pos_scores=self._logits(batch.users, batch.pos),
            neg_scores=self._logits(batch.users, batch.neg),
            user=reps[0] if reps else None,
            pos=reps[1] if reps else None,
            neg=reps[2] if reps else None,
            pos_log_q=batch.pos_log_q,
            neg_log_q=batch.neg_log_q,
        )
        terms = self.ranking_loss.terms(ranked)
        terms["reg"] = Term(self.reg_loss(batch))
        return terms

    def reg_loss(self, batch: Batch) -> torch.Tensor:
        """``reg`` over the batch's user, positive and (``include_negative``) negative rows of
        every tower's tables."""
        tables = self._tables()
        users = torch.cat([t(batch.users) for t in tables[0::2]], -1)
        pos = torch.cat([t(batch.pos) for t in tables[1::2]], -1)
        rows = [users, pos]
        if self.reg.include_negative:
            rows.append(torch.cat([t(batch.neg) for t in tables[1::2]], -1))
        return self.reg(*rows)

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The towers' embedding tables side by side, ``([U, m + d], [I, m + d])`` (GMF first):
        a network-scored model's inputs, not ranking representations."""
        tables = self._tables()
        return (
            torch.cat([t.weight for t in tables[0::2]], -1).detach(),
            torch.cat([t.weight for t in tables[1::2]], -1).detach(),
        )

    @torch.no_grad()
    def scorer(self) -> Scorer:
        """A :class:`TowerScorer`: the MLP's first layer split into user and item parts, the
        GMF half through the prediction layer as ``(p_u ⊙ h_G) @ Qᵀ``."""
        w_gmf, w_mlp = self._split_prediction()
        first, rest = self.mlp[0], self.mlp[1:]
        d = self.layers[0] // 2
        return TowerScorer(
            user_first=self.mlp_user.weight @ first.weight[:, :d].t(),
            item_first=torch.addmm(first.bias, self.mlp_item.weight, first.weight[:, d:].t()),
            hidden=[(lin.weight, lin.bias) for lin in rest],
            out_weight=w_mlp,
            out_bias=self.prediction.bias[0],
            user_dot=self.gmf_user.weight * w_gmf if self.mf_dim else None,
            item_dot=self.gmf_item.weight if self.mf_dim else None,
            memory_mb=self.eval_memory_mb,
        )


class GMF(NCF):
    """Generalised matrix factorisation, ``s(u, i) = h · (p_u ⊙ q_i) + b`` (He et al. 2017).

    An inner product of augmented vectors, ``⟨[p_u ⊙ h, b], [q_i, 1]⟩``: ranked by
    :class:`~sslrec.evaluation.scoring.InnerProductScorer` and saved so in ``embeddings.npz``
    (``[U, m + 1]``, ``[I, m + 1]``), which reproduce every logit exactly.

    Args: see :class:`NCF`.
    """

    inner_product = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        mf_dim: int = 8,
        loss: RankingLoss = BCELoss(),  # noqa: B008 (frozen dataclass)
        reg: L2Reg = L2Reg(weight=0.0),
        init_std: float = 0.01,
    ) -> None:
        if mf_dim < 1:
            raise ValueError(f"GMF needs mf_dim >= 1, got {mf_dim}")
        super().__init__(n_users, n_items, mf_dim, (), loss, reg, init_std)

    def _augmented(self, users: torch.Tensor | None, items: torch.Tensor | None):
        h, b = self.prediction.weight[0], self.prediction.bias
        u = self.gmf_user.weight if users is None else self.gmf_user(users)
        i = self.gmf_item.weight if items is None else self.gmf_item(items)
        u = torch.cat([u * h, b.expand(*u.shape[:-1], 1)], -1)
        i = torch.cat([i, torch.ones(*i.shape[:-1], 1, dtype=i.dtype, device=i.device)], -1)
        return u, i

    def representations(self, users, pos, neg):
        u, p = self._augmented(users, pos)
        return u, p, self._augmented(None, neg)[1]

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([p_u ⊙ h, b], [q_i, 1])``: their inner product is the logit."""
        u, i = self._augmented(None, None)
        return u.detach(), i.detach()

    def scorer(self) -> Scorer:
        return InnerProductScorer(*self.embeddings())


class MLP(NCF):
    """The NCF multi-layer perceptron over ``[p_u, q_i]`` (He et al. 2017); scored by a
    :class:`TowerScorer`.

    Args: see :class:`NCF`.
    """

    inner_product = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        layers: Sequence[int] = [64, 32, 16, 8],  # noqa: B006 (never mutated)
        loss: RankingLoss = BCELoss(),  # noqa: B008 (frozen dataclass)
        reg: L2Reg = L2Reg(weight=0.0),
        init_std: float = 0.01,
        eval_memory_mb: float = EVAL_MEMORY_MB,
    ) -> None:
        if not layers:
            raise ValueError("MLP needs layers, e.g. [64, 32, 16, 8]")
        super().__init__(n_users, n_items, 0, layers, loss, reg, init_std, eval_memory_mb)


class NeuMF(NCF):
    """Neural matrix factorisation: GMF and MLP towers fused by one prediction layer
    (He et al. 2017), optionally initialised from a finished GMF run and a finished MLP run.

    Pre-training (the paper's Section 3.4.1, official ``NeuMF.py``): with ``pretrained_gmf`` and
    ``pretrained_mlp`` set to run directories, the runs' selected weights (``checkpoint.pt``'s
    ``state.best_model``, else its last ``model``) are copied: GMF embeddings, MLP embeddings
    and layers, and the prediction layer ``[α · h_GMF, (1 − α) · h_MLP]`` with bias
    ``α · b_GMF + (1 − α) · b_MLP`` (the official code uses 0.5 for both halves and for the
    summed bias: α = 0.5). The pre-trained NeuMF's logit is then exactly
    ``α · GMF logit + (1 − α) · MLP logit``. Sizes are checked against this model (same
    dataset, ``mf_dim`` and ``layers``), with an error naming the run directory.

    Args:
        n_users, n_items, mf_dim, layers, loss, reg, init_std, eval_memory_mb: see :class:`NCF`.
        pretrained_gmf: a ``model=gmf`` run directory, or ``None``.
        pretrained_mlp: a ``model=mlp`` run directory, or ``None`` (both or neither).
        alpha: ``α``, the GMF share of the pre-trained prediction layer.
    """

    inner_product = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        mf_dim: int = 8,
        layers: Sequence[int] = [64, 32, 16, 8],  # noqa: B006 (never mutated)
        pretrained_gmf: str | None = None,
        pretrained_mlp: str | None = None,
        alpha: float = 0.5,
        loss: RankingLoss = BCELoss(),  # noqa: B008 (frozen dataclass)
        reg: L2Reg = L2Reg(weight=0.0),
        init_std: float = 0.01,
        eval_memory_mb: float = EVAL_MEMORY_MB,
    ) -> None:
        if mf_dim < 1 or not layers:
            raise ValueError(
                f"NeuMF needs both towers: mf_dim >= 1 and layers, got {mf_dim} and {layers}"
            )
        if not 0 <= alpha <= 1:
            raise ValueError(f"NeuMF alpha must be in [0, 1], got {alpha}")
        if (pretrained_gmf is None) != (pretrained_mlp is None):
            raise ValueError(
                "NeuMF pre-training needs both model.pretrained_gmf and model.pretrained_mlp "
                f"(run directories), got {pretrained_gmf!r} and {pretrained_mlp!r}"
            )
        super().__init__(n_users, n_items, mf_dim, layers, loss, reg, init_std, eval_memory_mb)
        self.alpha = alpha
        if pretrained_gmf is not None and pretrained_mlp is not None:
            self.load_pretrained(pretrained_gmf, pretrained_mlp, alpha)

    @torch.no_grad()
    def load_pretrained(self, gmf_dir: str | Path, mlp_dir: str | Path, alpha: float) -> None:
        """Copy a GMF run's and an MLP run's selected weights in, as described above."""
        own = self.state_dict()
        m, h_last = self.mf_dim, self.layers[-1]
        gmf_shapes = {
            "gmf_user.weight": own["gmf_user.weight"].shape,
            "gmf_item.weight": own["gmf_item.weight"].shape,
            "prediction.weight": (1, m),
            "prediction.bias": (1,),
        }
        mlp_shapes = {k: v.shape for k, v in own.items() if k.startswith(("mlp_", "mlp."))}
        mlp_shapes |= {"prediction.weight": (1, h_last), "prediction.bias": (1,)}
        sizes = f"{self.n_users} users, {self.n_items} items"
        gmf = _run_weights(
            gmf_dir, "pretrained_gmf", "gmf", gmf_shapes, f"{sizes}, mf_dim={self.mf_dim}"
        )
        mlp = _run_weights(
            mlp_dir, "pretrained_mlp", "mlp", mlp_shapes, f"{sizes}, layers={self.layers}"
        )
        for key in gmf_shapes:
            if not key.startswith("prediction"):
                own[key].copy_(gmf[key])
        for key in mlp_shapes:
            if not key.startswith("prediction"):
                own[key].copy_(mlp[key])
        w = torch.cat([alpha * gmf["prediction.weight"], (1 - alpha) * mlp["prediction.weight"]], 1)
        own["prediction.weight"].copy_(w)
        b = alpha * gmf["prediction.bias"] + (1 - alpha) * mlp["prediction.bias"]
        own["prediction.bias"].copy_(b)


def _run_weights(
    run_dir: str | Path,
    option: str,
    model: str,
    shapes: dict[str, Any],
    sizes: str,
) -> dict[str, torch.Tensor]:
    """The selected weights of a finished run (``state.best_model``, else ``model``), checked
    to hold ``shapes``; errors name ``option=run_dir`` and what was expected."""
    path = Path(run_dir).expanduser() / CHECKPOINT
    expected = f"expected the run directory of a finished model={model} run with {sizes}"
    if not path.is_file():
        raise FileNotFoundError(f"model.{option}={run_dir}: no {CHECKPOINT} there; {expected}")
    ckpt = load_torch(path, mmap=True)  # only the best weights are read
    weights = (ckpt.get("state") or {}).get("best_model") or ckpt.get("model")
    if not isinstance(weights, dict):
        raise ValueError(f"model.{option}={run_dir}: {path} holds no model weights; {expected}")
    trained = _run_model(run_dir)
    for key, shape in shapes.items():
        found = weights.get(key)
        if found is None or tuple(found.shape) != tuple(shape):
            got = "missing" if found is None else f"of shape {tuple(found.shape)}"
            raise ValueError(
                f"model.{option}={run_dir}: {key} is {got}, this NeuMF needs {tuple(shape)}"
                f"{trained}; {expected}"
            )
    return {k: weights[k] for k in shapes}


def _run_model(run_dir: str | Path) -> str:
    """`` (the run was model X)`` from its ``config.yaml``, or ``""``."""
    try:
        import yaml

        cfg = yaml.safe_load((Path(run_dir).expanduser() / CONFIG).read_text())
        return f" (that run trained {cfg['model']['_target_']})"
    except Exception:
        return ""
