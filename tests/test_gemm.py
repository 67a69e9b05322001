"""The CPU GEMM library choice (MKL or oneDNN) and its products against float64."""

from __future__ import annotations

import pytest
import torch

from sslrec import gemm
from sslrec.gemm import cpu_gemm, cpu_gemm_backend, onednn_linear, onednn_products
from sslrec.losses import tiled

needs_onednn = pytest.mark.skipif(not gemm._onednn_available(), reason="torch without oneDNN")

CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: 25
model name\t: {name}
flags\t\t: fpu avx512f
"""


@pytest.fixture
def fake_cpu(tmp_path, monkeypatch):
    """Point the vendor lookup at a cpuinfo file of the given vendor on an x86_64 machine."""

    def use(vendor: str, name: str = "Some CPU", machine: str = "x86_64") -> str:
        path = tmp_path / f"cpuinfo_{vendor}"
        path.write_text(CPUINFO.format(vendor=vendor, name=name))
        real = gemm.cpu_vendor
        monkeypatch.setattr(gemm, "cpu_vendor", lambda cpuinfo=str(path): real(cpuinfo))
        monkeypatch.setattr(gemm.platform, "machine", lambda: machine)
        monkeypatch.setattr(gemm, "_onednn_available", lambda: True)
        monkeypatch.delenv("SSLREC_CPU_GEMM", raising=False)
        gemm._auto_backend.cache_clear()
        return str(path)

    yield use
    gemm._auto_backend.cache_clear()


def test_cpu_vendor_and_name(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(vendor="AuthenticAMD", name="AMD EPYC 9B14"))
    assert gemm.cpu_vendor(str(path)) == "AuthenticAMD"
    assert gemm.cpu_name(str(path)) == "AMD EPYC 9B14, AuthenticAMD"
    assert gemm.cpu_vendor(str(tmp_path / "missing")) == ""
    assert gemm.cpu_name(str(tmp_path / "missing")) == ""


@pytest.mark.parametrize(
    "vendor,machine,expected",
    [
        ("AuthenticAMD", "x86_64", "onednn"),
        ("HygonGenuine", "x86_64", "onednn"),
        ("GenuineIntel", "x86_64", "mkl"),
        ("", "x86_64", "mkl"),
        ("AuthenticAMD", "aarch64", "mkl"),
    ],
)
def test_auto_picks_onednn_on_amd_only(fake_cpu, vendor, machine, expected):
    fake_cpu(vendor, machine=machine)
    assert cpu_gemm_backend() == expected
    with cpu_gemm("auto"):
        assert cpu_gemm_backend() == expected


def test_overrides_environment_and_context(fake_cpu, monkeypatch):
    fake_cpu("GenuineIntel")
    monkeypatch.setenv("SSLREC_CPU_GEMM", "onednn")
    assert cpu_gemm_backend() == "onednn"
    with cpu_gemm("mkl"):  # the context beats the environment, and nests
        assert cpu_gemm_backend() == "mkl"
        with cpu_gemm("onednn"):
            assert cpu_gemm_backend() == "onednn"
        assert cpu_gemm_backend() == "mkl"
    assert cpu_gemm_backend() == "onednn"
    monkeypatch.setenv("SSLREC_CPU_GEMM", "blas")
    with pytest.raises(ValueError, match="SSLREC_CPU_GEMM must be one of auto, mkl, onednn"):
        cpu_gemm_backend()
    with pytest.raises(ValueError, match="backend must be one of"), cpu_gemm("fast"):
        pass


def test_onednn_falls_back_to_mkl_where_torch_lacks_it(fake_cpu, monkeypatch):
    fake_cpu("AuthenticAMD")
    monkeypatch.setattr(gemm, "_onednn_available", lambda: False)
    assert cpu_gemm_backend() == "mkl"


@needs_onednn
def test_onednn_for_large_float32_products_where_chosen_and_for_bf16():
    big = gemm.ONEDNN_MIN_MACS
    bf16 = torch.ones(2, 2, dtype=torch.bfloat16)
    with cpu_gemm("onednn"):
        assert onednn_products(torch.ones(2, 2), big)
        assert not onednn_products(torch.ones(2, 2), big - 1)
        assert not onednn_products(torch.ones(2, 2, dtype=torch.float64), big)
        assert not onednn_products(torch.ones(2, 2, dtype=torch.float16), big)
    with cpu_gemm("mkl"):
        assert not onednn_products(torch.ones(2, 2), big)
        # torch's CPU bf16 products are oneDNN's whatever the fp32 choice
        assert onednn_products(bf16, big) == gemm._onednn_bf16_available()
        assert not onednn_products(bf16, big - 1)


@needs_onednn
@pytest.mark.parametrize("transposed", [False, True])
def test_onednn_linear_matches_float64(transposed):
    """``x @ w.T`` through oneDNN, ``w`` contiguous or a transposed view, against float64."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(37, 65, generator=g)
    w = torch.randn(65, 129, generator=g).t() if transposed else torch.randn(129, 65, generator=g)
    got = onednn_linear(x, w)
    ref = x.double() @ w.double().t()
    assert got.shape == (37, 129) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


@needs_onednn
def test_eager_infonce_takes_onednn_when_chosen(monkeypatch):
    """The eager all-node logsumexp's products go through oneDNN when it is chosen (three per
    block: logits, numerators, ∂/∂c) and give MKL's values and gradients to fp32 rounding;
    below the size threshold they stay on MKL."""
    monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", 0)
    calls = []
    real = tiled.onednn_linear
    monkeypatch.setattr(tiled, "onednn_linear", lambda *args: calls.append(1) or real(*args))
    g = torch.Generator().manual_seed(5)
    a = torch.nn.functional.normalize(torch.randn(10, 8, generator=g), dim=1) / 0.2
    c = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=1)
    out = {}
    for backend in ("mkl", "onednn"):
        calls.clear()
        a_, c_ = a.clone().requires_grad_(), c.clone().requires_grad_()
        with cpu_gemm(backend):
            lse = tiled.tiled_logsumexp(a_, c_, 16, rows=4)
        lse.sum().backward()
        out[backend] = (lse.detach(), a_.grad, c_.grad)
        assert len(calls) == (0 if backend == "mkl" else 3 * 3)  # 3 blocks of 4, 4, 2 rows
    for x, y in zip(out["onednn"], out["mkl"], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6 * y.abs().max().item())
    # ∂/∂c comes back [N, d] row-major, as MKL's: a transposed view would send later reductions
    # over its rows down another summation order (other bits)
    c_aug = tiled._with_column(c, 1.0)
    for backend in ("mkl", "onednn"):
        with cpu_gemm(backend):
            grad_c = tiled._eager_lse2_and_grads(a, c_aug, 4, True, True)[2]
        assert grad_c.shape == c.shape and grad_c.is_contiguous()


@needs_onednn
def test_small_eager_products_stay_on_mkl(monkeypatch):
    calls = []
    real = tiled.onednn_linear
    monkeypatch.setattr(tiled, "onednn_linear", lambda *args: calls.append(1) or real(*args))
    a = torch.randn(10, 8, requires_grad=True)
    with cpu_gemm("onednn"):
        tiled.tiled_logsumexp(a, torch.randn(50, 8), 16, rows=4).sum().backward()
    assert calls == []


@needs_onednn
def test_inner_product_scores_through_onednn(monkeypatch):
    """A scorer's score block goes to oneDNN when chosen and large enough, and matches float64."""
    from sslrec.evaluation import scoring

    calls = []
    real = scoring.onednn_linear
    monkeypatch.setattr(scoring, "onednn_linear", lambda *args: calls.append(1) or real(*args))
    g = torch.Generator().manual_seed(9)
    users, items = torch.randn(30, 16, generator=g), torch.randn(200, 16, generator=g)
    scorer = scoring.InnerProductScorer(users, items)
    ids = torch.tensor([3, 0, 29, 3])
    ref = users[ids].double() @ items.double().t()
    for min_macs, expected in ((0, [1]), (4 * 200 * 16 + 1, [])):
        calls.clear()
        monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", min_macs)
        with cpu_gemm("onednn"):
            got = scorer.full_scores(ids, out=torch.empty(4, 200))
        assert calls == expected
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
