"""Graph augmenters (SGL ED/ND/RW) and SimGCL's noise, against dense references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslrec.augment import EdgeDropout, NodeDropout, RandomWalk, UniformNoise, drop_edges
from sslrec.graph import normalized_adjacency
from tests.reference import dense_normalized_adjacency, random_graph

NU, NI = 10, 12


def _graph(density: float = 0.4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    u, i = random_graph(NU, NI, density, seed=seed)
    return torch.from_numpy(u), torch.from_numpy(i)


def _dense(adj: torch.Tensor) -> np.ndarray:
    return adj.to_dense().double().numpy()


def _pairs(adj: torch.Tensor, n_users: int = NU) -> set[tuple[int, int]]:
    """The (user, item) pairs present in the user-item block of a normalised adjacency."""
    uu, ii = np.nonzero(_dense(adj)[:n_users, n_users:])
    return set(zip(uu.tolist(), ii.tolist(), strict=True))


def _check_normalised_view(adj: torch.Tensor, n_edges: int) -> set[tuple[int, int]]:
    """``adj`` stores ``2·n_edges`` values, is symmetric, and is exactly the re-normalised graph
    of the pairs it holds; returns those pairs."""
    d = _dense(adj)
    assert adj.layout == torch.sparse_csr
    assert adj.shape == (NU + NI, NU + NI)
    assert adj.values().numel() == 2 * n_edges
    np.testing.assert_array_equal(d, d.T)
    assert np.all(d[:NU, :NU] == 0) and np.all(d[NU:, NU:] == 0)
    pairs = _pairs(adj)
    assert len(pairs) == n_edges
    ku = np.array([p[0] for p in pairs], dtype=np.int64)
    ki = np.array([p[1] for p in pairs], dtype=np.int64)
    np.testing.assert_allclose(d, dense_normalized_adjacency(ku, ki, NU, NI), rtol=1e-6, atol=0)
    return pairs


# --------------------------------------------------------------------------------------------
# Edge dropout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.9])
def test_drop_edges_keeps_exact_count_and_renormalises(ratio):
    users, items = _graph()
    n_edges = users.numel()
    original = set(zip(users.tolist(), items.tolist(), strict=True))
    torch.manual_seed(0)
    adj = drop_edges(users, items, NU, NI, ratio)
    n_keep = int(n_edges * (1.0 - ratio))
    pairs = _check_normalised_view(adj, n_keep)
    assert pairs <= original
    if ratio == 0.0:
        full = normalized_adjacency(users, items, NU, NI)
        np.testing.assert_array_equal(_dense(adj), _dense(full))


def test_drop_edges_does_not_rescale():
    """Values are exactly ``1/√(d_u d_i)`` of the kept graph: no ``1/(1−ρ)`` factor."""
    users, items = _graph()
    torch.manual_seed(3)
    adj = drop_edges(users, items, NU, NI, 0.5)
    d = _dense(adj)
    deg = (d[:NU, NU:] != 0).sum(1), (d[:NU, NU:] != 0).sum(0)
    uu, ii = np.nonzero(d[:NU, NU:])
    np.testing.assert_allclose(d[uu, NU + ii], 1.0 / np.sqrt(deg[0][uu] * deg[1][ii]), rtol=1e-6)
    # a user and an item of degree one, joined by their only edge, would get exactly 1
    assert d.max() <= 1.0 + 1e-6


def test_drop_edges_invalid_ratio():
    users, items = _graph()
    for ratio in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            drop_edges(users, items, NU, NI, ratio)


def test_edge_dropout_shares_one_matrix_across_layers():
    users, items = _graph()
    torch.manual_seed(0)
    views = EdgeDropout(0.3)(users, items, NU, NI, 4)
    assert len(views) == 4
    assert all(v is views[0] for v in views)
    _check_normalised_view(views[0], int(users.numel() * 0.7))


# --------------------------------------------------------------------------------------------
# Node dropout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio,seed", [(0.2, 0), (0.2, 1), (0.3, 2), (0.0, 0)])
def test_node_dropout_removes_exact_node_counts(ratio, seed):
    users, items = _graph(density=0.6, seed=5)
    deg_u = np.bincount(users.numpy(), minlength=NU)
    deg_i = np.bincount(items.numpy(), minlength=NI)
    n_drop_u, n_drop_i = int(NU * ratio), int(NI * ratio)
    # Precondition: no node can lose all its edges unless it is itself dropped, so the
    # zero-degree nodes of the view are exactly the dropped ones.
    assert deg_u.min() > n_drop_i and deg_i.min() > n_drop_u
    torch.manual_seed(seed)
    views = NodeDropout(ratio)(users, items, NU, NI, 3)
    assert len(views) == 3 and all(v is views[0] for v in views)
    d = _dense(views[0])
    view_deg = (d != 0).sum(1)
    dropped_u = set(np.flatnonzero(view_deg[:NU] == 0).tolist())
    dropped_i = set(np.flatnonzero(view_deg[NU:] == 0).tolist())
    assert len(dropped_u) == n_drop_u
    assert len(dropped_i) == n_drop_i
    # every interaction between two kept nodes survives, none touching a dropped node does
    expected = {
        (u, i)
        for u, i in zip(users.tolist(), items.tolist(), strict=True)
        if u not in dropped_u and i not in dropped_i
    }
    pairs = _check_normalised_view(views[0], len(expected))
    assert pairs == expected


def test_node_dropout_drops_the_seeded_draws():
    """Recompute the dropped ids with the same seed: users first, then items."""
    users, items = _graph(density=0.6, seed=5)
    torch.manual_seed(7)
    adj = NodeDropout(0.25)(users, items, NU, NI, 1)[0]
    torch.manual_seed(7)
    du = set(torch.randperm(NU)[: int(NU * 0.25)].tolist())
    di = set(torch.randperm(NI)[: int(NI * 0.25)].tolist())
    keep = [
        (u, i)
        for u, i in zip(users.tolist(), items.tolist(), strict=True)
        if u not in du and i not in di
    ]
    ku = np.array([p[0] for p in keep], dtype=np.int64)
    ki = np.array([p[1] for p in keep], dtype=np.int64)
    np.testing.assert_allclose(_dense(adj), dense_normalized_adjacency(ku, ki, NU, NI), rtol=1e-6)


def test_node_dropout_invalid_ratio():
    with pytest.raises(ValueError):
        NodeDropout(1.0)
    with pytest.raises(ValueError):
        NodeDropout(-0.5)


# --------------------------------------------------------------------------------------------
# Random walk
# --------------------------------------------------------------------------------------------


def test_random_walk_draws_distinct_graph_per_layer():
    users, items = _graph()
    original = set(zip(users.tolist(), items.tolist(), strict=True))
    n_keep = int(users.numel() * (1.0 - 0.2))
    torch.manual_seed(0)
    views = RandomWalk(0.2)(users, items, NU, NI, 4)
    assert len(views) == 4
    kept = [_check_normalised_view(v, n_keep) for v in views]
    assert all(k <= original for k in kept)
    for a in range(4):
        for b in range(a + 1, 4):
            assert views[a] is not views[b]
            assert kept[a] != kept[b]


# --------------------------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "augmenter", [EdgeDropout(0.3), NodeDropout(0.2), RandomWalk(0.3)], ids=["ED", "ND", "RW"]
)
def test_same_seed_same_view_different_seed_different_view(augmenter):
    users, items = _graph(density=0.6, seed=5)

    def draw(seed: int) -> list[np.ndarray]:
        torch.manual_seed(seed)
        return [_dense(a) for a in augmenter(users, items, NU, NI, 3)]

    first, again, other = draw(11), draw(11), draw(12)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


# --------------------------------------------------------------------------------------------
# Uniform noise
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_uniform_noise_norm_and_sign(eps):
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    assert (x != 0).all()
    x_before = x.clone()
    out = UniformNoise(eps)(x)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)  # input untouched
    noise = out - x
    torch.testing.assert_close(noise.norm(dim=1), torch.full((32,), eps), rtol=1e-5, atol=1e-6)
    assert torch.equal(torch.sign(noise), torch.sign(x))


def test_uniform_noise_zero_entries_get_no_noise():
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    x[:, 2] = 0.0
    noise = UniformNoise(0.3)(x) - x
    assert torch.all(noise[:, 2] == 0)


def test_gaussian_noise_norm_without_sign_alignment():
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    noise = UniformNoise(0.2, "gaussian")(x) - x
    torch.testing.assert_close(noise.norm(dim=1), torch.full((32,), 0.2), rtol=1e-5, atol=1e-6)
    # 256 independent signs: agreeing everywhere has probability 2^-256
    assert not torch.equal(torch.sign(noise), torch.sign(x))
    agree = (torch.sign(noise) == torch.sign(x)).float().mean().item()
    assert 0.3 < agree < 0.7


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_noise_is_fresh_per_call_and_seeded(distribution):
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    aug = UniformNoise(0.1, distribution)
    torch.manual_seed(3)
    a, b = aug(x), aug(x)
    torch.manual_seed(3)
    c = aug(x)
    assert not torch.equal(a, b)
    assert torch.equal(a, c)


def test_noise_invalid_distribution():
    with pytest.raises(ValueError):
        UniformNoise(0.1, "laplace")


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_noise_draws_follow_the_distribution(distribution):
    """The CPU draws (numpy PCG64, seeded from torch's generator) against torch's own: the
    per-row noise direction has the same mean and spread (20,000 rows of d = 8)."""
    torch.manual_seed(0)
    x = torch.ones(20_000, 8)
    got = (
        (UniformNoise(1.0, distribution)(x) - x).abs()
        if distribution == "gaussian"
        else (UniformNoise(1.0, distribution)(x) - x)
    )
    ref = torch.rand(20_000, 8) if distribution == "uniform" else torch.randn(20_000, 8)
    ref = torch.nn.functional.normalize(ref, dim=-1)
    ref = ref.abs() if distribution == "gaussian" else ref
    torch.testing.assert_close(got.mean(0), ref.mean(0), rtol=0, atol=0.01)
    torch.testing.assert_close(got.std(0), ref.std(0), rtol=0, atol=0.01)
    assert got.min() >= 0


def test_cpu_draws_are_chunked_streams_independent_of_threads(monkeypatch):
    """A draw larger than one chunk: chunk j is the j-th SeedSequence child's PCG64 stream
    (checked against numpy directly), and 1 or 2 threads draw the same numbers."""
    import numpy as np

    from sslrec.augment import noise as noise_mod

    monkeypatch.setattr(noise_mod, "CPU_DRAW_CHUNK", 1000)
    x = torch.ones(700, 5)  # 3,500 numbers: chunks of 1000, 1000, 1000, 500
    draws = {}
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(4)
            draws[threads] = noise_mod.draw_like(x, "uniform").clone()
        finally:
            torch.set_num_threads(before)
    assert torch.equal(draws[1], draws[2])
    torch.manual_seed(4)
    seed = int(torch.randint(0, 2**62, (1,)))
    children = np.random.SeedSequence(seed).spawn(4)
    want = np.concatenate(
        [
            np.random.Generator(np.random.PCG64(c)).random(n, dtype=np.float32)
            for c, n in zip(children, (1000, 1000, 1000, 500), strict=True)
        ]
    )
    np.testing.assert_array_equal(draws[1].numpy().reshape(-1), want)


def test_cpu_draw_buffers_are_per_thread():
    """A draw is a view of a reused buffer: reused by the next draw in its own thread, never by
    another thread's (models trained in threads of one process)."""
    import threading

    from sslrec.augment import noise as noise_mod

    x = torch.ones(30, 4)
    first = noise_mod.draw_like(x, "uniform")
    assert noise_mod.draw_like(x, "uniform").data_ptr() == first.data_ptr()
    other: list[torch.Tensor] = []
    worker = threading.Thread(target=lambda: other.append(noise_mod.draw_like(x, "uniform")))
    worker.start()
    worker.join()
    assert other[0].data_ptr() != first.data_ptr()


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 4097])
def test_uniform_fill_equals_numpys_float32_draws_bit_for_bit(size):
    import numpy as np

    from sslrec.augment.noise import uniform_fill

    for seed in (0, 1, 2**61 + 5):
        got = np.full(size, np.nan, dtype=np.float32)
        uniform_fill(got, np.random.PCG64(seed))
        want = np.random.Generator(np.random.PCG64(seed)).random(size, dtype=np.float32)
        np.testing.assert_array_equal(got, want)


def test_uniform_fill_without_the_unit_scale_is_the_same_draws_times_2_to_24():
    import numpy as np

    from sslrec.augment.noise import uniform_fill

    for size in (1, 7, 4097):
        unit, raw = np.empty(size, np.float32), np.empty(size, np.float32)
        uniform_fill(unit, np.random.PCG64(11))
        uniform_fill(raw, np.random.PCG64(11), unit=False)
        np.testing.assert_array_equal(raw, unit * np.float32(2.0**24))
        assert (raw == np.floor(raw)).all() and raw.max() < 2**24


def _plain_noisy(x: torch.Tensor, seed: int, eps: float) -> torch.Tensor:
    """``x + ε · sign(x) ⊙ Δ / max(‖Δ‖, 1e-12)`` step by step, ``Δ`` numpy's own float32
    ``U[0, 1)`` from the draw's seed (one chunk)."""
    import numpy as np

    (child,) = np.random.SeedSequence(seed).spawn(1)
    delta = np.random.Generator(np.random.PCG64(child)).random(x.numel(), dtype=np.float32)
    delta = torch.from_numpy(delta).view(x.shape)
    scale = delta.norm(dim=1, keepdim=True).clamp_min(1e-12).reciprocal() * eps
    return x + torch.sign(x) * (delta * scale)


def test_noise_equals_the_plain_expression_bit_for_bit():
    """The fused CPU noise (draws scaled by 2^24, sign and addition in one addcmul), in place,
    into another buffer, on a strided slice (the wide layout's views) and through
    ``additive_noise``, equals the plain expression bit for bit, zeros of ``x`` included."""
    aug = UniformNoise(0.1)
    base = torch.randn(40, 6, generator=torch.Generator().manual_seed(5))
    base[3] = 0.0  # a node without edges: its layer output is a row of zeros
    base[7, 2], base[9, 4] = 0.0, -0.0
    wide = torch.cat([base, torch.randn(40, 6)], dim=1)
    for make, how in (
        (lambda: base.clone(), "in place"),
        (lambda: base.clone(), "out"),
        (lambda: wide.clone()[:, :6], "in place"),
        (lambda: base.clone(), "additive_noise"),
    ):
        x = make()
        torch.manual_seed(6)
        seed = int(torch.randint(0, 2**62, (1,)))
        want = _plain_noisy(x, seed, 0.1)
        torch.manual_seed(6)
        if how == "in place":
            got = aug.add_noise(x)
            assert got is x
        elif how == "out":
            out = torch.empty_like(x)
            got = aug.add_noise(x, out)
            assert got is out and torch.equal(x, base)
        else:
            got = x + aug.additive_noise(x)
        assert torch.equal(got, want), how
        assert (got[3] == 0).all() and got[7, 2] == 0 and got[9, 4] == 0


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _draws(noise_mod, count: int, shape, distribution: str, ahead: bool) -> list[torch.Tensor]:
    """``count`` draws after ``manual_seed(3)``, inside ``drawn_ahead`` or one by one, and
    torch's generator state after them (last)."""
    torch.manual_seed(3)
    x = torch.ones(shape)
    out = []
    if ahead:
        with noise_mod.drawn_ahead(count, shape, distribution):
            out = [noise_mod.draw_like(x, distribution, unit=False).clone() for _ in range(count)]
    else:
        out = [noise_mod.draw_like(x, distribution, unit=False).clone() for _ in range(count)]
    return [*out, torch.get_rng_state()]


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
@pytest.mark.parametrize("ahead_bytes", [1 << 30, 2 * 4 * 700 * 5, 1])
def test_drawn_ahead_equals_draws_one_by_one(two_threads, monkeypatch, distribution, ahead_bytes):
    """Announced draws, made in groups of every size (all 5 at once, 2 + 2 + 1, one by one)
    and over several chunks each, equal the draws made one by one bit for bit, and leave
    torch's generator where they do."""
    from sslrec.augment import noise as noise_mod

    monkeypatch.setattr(noise_mod, "CPU_DRAW_CHUNK", 1000)
    monkeypatch.setattr(noise_mod, "AHEAD_BYTES", ahead_bytes)
    made = []
    real_next = noise_mod._Ahead.next
    monkeypatch.setattr(
        noise_mod._Ahead, "next", lambda self, key: made.append(1) or real_next(self, key)
    )
    got = _draws(noise_mod, 5, (700, 5), distribution, ahead=True)
    want = _draws(noise_mod, 5, (700, 5), distribution, ahead=False)
    assert len(made) == 5  # the announced path was taken
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


def test_drawn_ahead_takes_other_draws_between_its_groups(two_threads, monkeypatch):
    """A draw from torch's generator after a group's last draw (between groups, or after all
    of them) comes where it would one by one: accepted, and every number is the same."""
    from sslrec.augment import noise as noise_mod

    monkeypatch.setattr(noise_mod, "AHEAD_BYTES", 2 * 4 * 10 * 4)  # groups of 2

    def run(ahead: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(noise_mod, "DRAW_AHEAD", ahead)
        torch.manual_seed(5)
        x, out = torch.ones(10, 4), []
        with noise_mod.drawn_ahead(3, (10, 4), "uniform"):
            for i in range(3):
                out.append(noise_mod.draw_like(x, "uniform", unit=False).clone())
                if i % 2 == 1 or i == 2:  # after each group
                    out.append(torch.rand(3))
        return out

    for got, want in zip(run(True), run(False), strict=True):
        assert torch.equal(got, want)


def test_drawn_ahead_does_nothing_on_one_thread_or_with_one_draw():
    from sslrec.augment import noise as noise_mod

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with noise_mod.drawn_ahead(3, (10, 4), "uniform"):
            assert getattr(noise_mod._LOCAL, "ahead", None) is None
    finally:
        torch.set_num_threads(before)
    with noise_mod.drawn_ahead(1, (10, 4), "uniform"):
        assert getattr(noise_mod._LOCAL, "ahead", None) is None


def test_drawn_ahead_refuses_what_would_change_the_numbers(two_threads):
    """Fewer or more draws than announced, another shape or distribution, a draw from torch's
    generator in between, nesting: each a RuntimeError, and the thread's state is cleared
    after it (the next draws are made one by one)."""
    from sslrec.augment import noise as noise_mod

    x = torch.ones(10, 4)
    with pytest.raises(RuntimeError, match="3 draws were announced to drawn_ahead, 2 made"):
        with noise_mod.drawn_ahead(3, (10, 4), "uniform"):
            noise_mod.draw_like(x, "uniform", unit=False)
            noise_mod.draw_like(x, "uniform", unit=False)
    with pytest.raises(RuntimeError, match="more than the 2 draws"):
        with noise_mod.drawn_ahead(2, (10, 4), "uniform"):
            for _ in range(3):
                noise_mod.draw_like(x, "uniform", unit=False)
    with pytest.raises(RuntimeError, match="announced draws of"):
        with noise_mod.drawn_ahead(2, (10, 4), "uniform"):
            noise_mod.draw_like(x, "gaussian", unit=False)
    with pytest.raises(RuntimeError, match="announced draws of"):
        with noise_mod.drawn_ahead(2, (10, 4), "uniform"):
            noise_mod.draw_like(torch.ones(11, 4), "uniform", unit=False)
    with pytest.raises(RuntimeError, match="generator was drawn from"):
        with noise_mod.drawn_ahead(2, (10, 4), "uniform"):
            noise_mod.draw_like(x, "uniform", unit=False)
            torch.rand(1)
            noise_mod.draw_like(x, "uniform", unit=False)
    with pytest.raises(RuntimeError, match="does not nest"):
        with noise_mod.drawn_ahead(2, (10, 4), "uniform"):
            with noise_mod.drawn_ahead(2, (10, 4), "uniform"):
                pass
    assert getattr(noise_mod._LOCAL, "ahead", None) is None
    with pytest.raises(ValueError, match="inside"):
        with noise_mod.drawn_ahead(2, (10, 4), "uniform"):
            raise ValueError("inside")
    assert getattr(noise_mod._LOCAL, "ahead", None) is None


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_accelerator_draws_ahead_equal_draws_one_by_one(distribution):
    """On an accelerator the announced noises come from one ``[calls, N, d]`` draw, scaled at
    once: on the CPU's generator the same numbers as drawn one by one (a GPU's stream is its
    own), for whole layers and for rows of one (``at``) alike."""
    from contextlib import nullcontext

    from sslrec.augment import noise as noise_mod
    from sslrec.devices import accelerator_paths

    aug = UniformNoise(0.2, distribution)
    x = torch.randn(12, 4)
    rows = torch.tensor([1, 5, 11])

    def run(ahead: bool) -> list[torch.Tensor]:
        torch.manual_seed(7)
        with accelerator_paths():
            with aug.drawn_ahead(3, (12, 4), "cpu") if ahead else nullcontext():
                assert (getattr(noise_mod._LOCAL, "scaled", None) is not None) == ahead
                return [
                    aug.add_noise(x.clone()),
                    aug.add_noise(x[rows].clone(), at=(rows, 12)),
                    aug.additive_noise(x).clone(),
                ]

    got, want = run(True), run(False)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    assert not torch.equal(got[0], x)


def test_accelerator_draws_ahead_refuse_what_was_not_announced():
    from sslrec.augment import noise as noise_mod
    from sslrec.devices import accelerator_paths

    aug, x = UniformNoise(0.1), torch.ones(10, 4)
    with accelerator_paths():
        with pytest.raises(RuntimeError, match="3 draws were announced to drawn_ahead, 2 made"):
            with aug.drawn_ahead(3, (10, 4), "cpu"):
                aug.add_noise(x.clone())
                aug.add_noise(x.clone())
        with pytest.raises(RuntimeError, match="more draws than announced"):
            with aug.drawn_ahead(2, (10, 4), "cpu"):
                for _ in range(3):
                    aug.add_noise(x.clone())
        with pytest.raises(RuntimeError, match="announced draws of"):
            with aug.drawn_ahead(2, (10, 4), "cpu"):
                aug.add_noise(torch.ones(11, 4))
        with pytest.raises(RuntimeError, match="does not nest"):
            with aug.drawn_ahead(2, (10, 4), "cpu"):
                with aug.drawn_ahead(2, (10, 4), "cpu"):
                    pass
        assert getattr(noise_mod._LOCAL, "scaled", None) is None
