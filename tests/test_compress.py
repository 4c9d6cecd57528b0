"""Tests of sigmadelta.compress (Bayesian compression)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Gamma, InverseGamma, Normal, kl_divergence

from sigmadelta import compress
from sigmadelta.compress import BayesConv2d, BayesLinear


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- KL terms
def test_weight_kl_matches_gaussian_kl():
    mu, logvar = torch.randn(50), torch.randn(50) - 2
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum()
    assert torch.allclose(compress.kl_gaussian_std_normal(mu, logvar), ref, rtol=1e-5)


def _kl_log_uniform_true(log_alpha: float) -> float:
    """KL(N(mu, mu^2 a) || 1/|z|) up to a constant: -0.5 log a + E log|1 + sqrt(a) eps|."""
    eps = np.linspace(-12, 12, 600_001)
    phi = np.exp(-0.5 * eps**2) / math.sqrt(2 * math.pi)
    integrand = phi * np.log(np.abs(1 + math.exp(0.5 * log_alpha) * eps) + 1e-300)
    return -0.5 * log_alpha + float(np.sum(integrand) * (eps[1] - eps[0]))


def test_log_uniform_kl_approximation():
    las = np.linspace(-6, 4, 11)
    true = np.array([_kl_log_uniform_true(v) for v in las])
    approx = np.array([float(compress.kl_log_uniform(torch.tensor(v))) for v in las])
    diff = (true - true[0]) - (approx - approx[0])
    assert np.abs(diff).max() < 0.02
    assert np.all(approx > 0) and approx[-1] < approx[0]


@pytest.mark.parametrize("mu,logvar", [(-1.0, -1.0), (0.5, -3.0), (2.0, 0.0)])
def test_lognormal_gamma_invgamma_kl_monte_carlo(mu, logvar):
    torch.manual_seed(1)
    n = 500_000
    m, lv = torch.tensor([mu], dtype=torch.float64), torch.tensor([logvar], dtype=torch.float64)
    logx = mu + math.exp(0.5 * logvar) * torch.randn(n, dtype=torch.float64)
    x = logx.exp()
    logq = Normal(mu, math.exp(0.5 * logvar)).log_prob(logx) - logx
    for shape, rate in [(0.5, 1.0), (0.5, 4.0), (2.0, 0.5)]:
        mc = float((logq - Gamma(shape, rate).log_prob(x)).mean())
        cf = float(compress.kl_lognormal_gamma(m, lv, shape, rate))
        assert abs(cf - mc) < 0.01 * abs(cf) + 5e-3, (shape, rate, cf, mc)
        mc = float((logq - InverseGamma(shape, rate).log_prob(x)).mean())
        cf = float(compress.kl_lognormal_invgamma(m, lv, shape, rate))
        assert abs(cf - mc) < 0.01 * abs(cf) + 5e-3, (shape, rate, cf, mc)


def test_half_cauchy_factorisation():
    """sqrt(a b), a ~ Gamma(1/2, rate 1/A^2), b ~ InvGamma(1/2, 1) is C+(0, A): median A."""
    a_scale = 3.0
    a = Gamma(0.5, 1.0 / a_scale**2).sample((400_000,))
    b = InverseGamma(0.5, 1.0).sample((400_000,))
    x = (a * b).sqrt()
    assert abs(float(x.median()) / a_scale - 1) < 0.02
    assert abs(float((x < a_scale * math.tan(0.45 * math.pi)).float().mean()) - 0.9) < 0.005


def test_model_kl_sums_layers():
    bm = compress.bayesianize(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), "ghs")
    total = compress.kl(bm)
    assert torch.allclose(total, bm[0].kl() + bm[2].kl())
    total.backward()
    assert bm[0].scale.a_mu.grad is not None and bm[2].weight_mu.grad is not None


# ------------------------------------------------------------- local reparameterisation
def _randomise(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            if p.numel() > 1 or p is layer.bias:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        layer.weight_logvar.fill_(-3.0)
        if isinstance(layer.scale, compress.GNJScale):
            layer.scale.logvar.fill_(-2.5)
        else:
            for name in ("sa_logvar", "sb_logvar", "a_logvar", "b_logvar"):
                getattr(layer.scale, name).fill_(-2.0)
    return layer


def _mc_weight_outputs(layer, x, n):
    """Outputs of the layer with fully sampled weights w = z * w~ (no local reparam)."""
    z = layer.scale.sample(n)
    std = (0.5 * layer.weight_logvar).exp()
    wt = layer.weight_mu + std * torch.randn(n, *layer.weight_mu.shape)
    if isinstance(layer, BayesLinear):
        w = wt * z[:, None, :]
        return torch.einsum("noi,i->no", w, x[0]) + layer.bias
    w = wt * z[:, :, None, None, None]
    b = layer.bias * z
    outs = [nn.functional.conv2d(x, w[i], b[i], layer.stride, layer.padding) for i in range(n)]
    return torch.cat(outs).flatten(1)


@pytest.mark.parametrize("prior", ["gnj", "ghs"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_local_reparameterisation_moments(prior, kind):
    torch.manual_seed(3)
    if kind == "linear":
        layer = _randomise(BayesLinear(6, 4, prior=prior))
        x = torch.randn(1, 6)
        n_lr, n_mc = 200_000, 50_000
    else:
        layer = _randomise(BayesConv2d(2, 3, 3, padding=1, prior=prior))
        x = torch.randn(1, 2, 3, 3)
        n_lr, n_mc = 100_000, 10_000
    with torch.no_grad():
        layer.train()
        out = layer(x.expand(n_lr, *x.shape[1:])).flatten(1)
        mc = _mc_weight_outputs(layer, x, n_mc)
    m_lr, v_lr = out.mean(0), out.var(0)
    m_mc, v_mc = mc.mean(0), mc.var(0)
    scale = v_mc.sqrt()
    assert torch.all((m_lr - m_mc).abs() < 0.05 * scale + 1e-3)
    assert torch.all((v_lr / v_mc - 1).abs() < 0.08)


def test_eval_mode_matches_original_model():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4))
    x = torch.randn(5, 1, 4, 4)
    for prior in ("gnj", "ghs"):
        bm = compress.bayesianize(model, prior).eval()
        assert isinstance(bm[0], BayesConv2d) and isinstance(bm[3], BayesLinear)
        assert torch.allclose(bm(x), model(x), atol=1e-3)
    assert isinstance(model[0], nn.Conv2d)  # original untouched


# ------------------------------------------------------------------------------ pruning
def _set_log_alpha(layer, log_alpha):
    """GNJ with mu_z = 1: log alpha = log sigma_z^2."""
    with torch.no_grad():
        layer.scale.mu.fill_(1.0)
        layer.scale.logvar.copy_(torch.as_tensor(log_alpha, dtype=torch.float32))


def _mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(),
                          nn.Linear(4, 3))
    bm = compress.bayesianize(model)
    _set_log_alpha(bm[0], [-5, 2, -5, -5, 0.5, -5])
    _set_log_alpha(bm[2], [-5, 1, -5, 3, -5])
    _set_log_alpha(bm[4], [-5, -5, -0.5, -5])
    return bm


def test_prune_linear_removes_groups_and_next_units():
    bm = _mlp()
    plans = compress.plan_pruning(bm, thresholds=-1.0)
    assert plans[0].keep_groups.tolist() == [True, False, True, True, False, True]
    assert plans[1].keep_groups.tolist() == [True, False, True, False, True]
    small, rep = compress.prune_and_quantize(bm, thresholds=-1.0, quantize=False)
    assert isinstance(small[0], nn.Linear) and small[0].weight.shape == (3, 6)
    assert small[2].weight.shape == (3, 3) and small[4].weight.shape == (3, 3)
    assert rep.architecture == [6, 3, 3, 3] and rep.inputs_used == 4
    assert rep.original_architecture == [6, 5, 4, 3]
    x = torch.randn(20, 6)
    ref = compress.masked_copy(bm, -1.0)(x)
    assert torch.allclose(small(x), ref, atol=1e-6)
    assert rep.n_nonzero == 4 * 3 + 9 + 9 and rep.n_weights == 30 + 20 + 12


def test_default_thresholds_and_full_pruning():
    bm = _mlp()
    assert compress.plan_pruning(bm)[0].threshold == compress.DEFAULT_THRESHOLDS["gnj"] == -1.0
    ghs = compress.bayesianize(nn.Sequential(nn.Linear(3, 2)), prior="ghs")
    assert compress.plan_pruning(ghs)[0].threshold == compress.DEFAULT_THRESHOLDS["ghs"]
    small, rep = compress.prune_and_quantize(bm, thresholds=-100.0)  # everything pruned
    assert rep.n_nonzero == 0 and rep.architecture[1:3] == [0, 0]
    assert small(torch.randn(2, 6)).shape == (2, 3)


def test_thresholds_float_list_dict():
    bm = _mlp()
    _, r1 = compress.prune_and_quantize(bm, [10.0, -1.0, 10.0], quantize=False)
    _, r2 = compress.prune_and_quantize(bm, {"2": -1.0, "0": 10.0, "4": 10.0}, quantize=False)
    assert r1.architecture == r2.architecture == [6, 3, 4, 3]
    with pytest.raises(KeyError):
        compress.prune_and_quantize(bm, {"7": 0.0})
    with pytest.raises(ValueError):
        compress.prune_and_quantize(bm, [0.0, 0.0])


def _convnet(bn: bool):
    torch.manual_seed(0)
    layers = [nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(4, 5, 3), *( [nn.BatchNorm2d(5)] if bn else []), nn.ReLU(),
              nn.Flatten(), nn.Linear(5 * 2 * 2, 6), nn.ReLU(), nn.Dropout(0.2),
              nn.Linear(6, 3)]
    model = nn.Sequential(nn.Sequential(*layers[:-4]), nn.Sequential(*layers[-4:]))
    if bn:  # non-trivial running statistics
        model.train()
        model(torch.randn(64, 2, 8, 8))
    return compress.bayesianize(model)


@pytest.mark.parametrize("bn", [False, True])
def test_prune_conv_flatten_linear(bn):
    bm = _convnet(bn)
    feats, head = bm[0], bm[1]
    _set_log_alpha(feats[0], [-5, 1, -5, -5])
    _set_log_alpha(feats[3], [-5, -5, 2, -5, -5])
    la = torch.full((20,), -5.0)
    la[[4, 5, 6, 7, 9]] = 3.0  # channel 1 entirely (4 columns) + one column of channel 2
    _set_log_alpha(head[0], la)
    _set_log_alpha(head[3], [-5, 4, -5, -5, -5, -5])
    small, rep = compress.prune_and_quantize(bm, quantize=False)
    assert rep.layer_names == ["0.0", "0.3", "1.0", "1.3"]
    conv2_out = 5 if bn else 3  # a pruned channel followed by BatchNorm is kept (exactness)
    assert small[0][0].weight.shape == (3, 2, 3, 3)
    assert small[0][3].weight.shape[:2] == (conv2_out - (1 if bn else 0), 3)
    assert small[1][0].weight.shape == (5, 4 * small[0][3].weight.shape[0])
    assert small[1][3].weight.shape == (3, 5)
    x = torch.randn(7, 2, 8, 8)
    ref = compress.masked_copy(bm)(x)
    assert torch.allclose(small(x), ref, atol=1e-5)
    assert set(rep.bits) == {"0.0", "0.3", "1.0", "1.3"}


def test_unsupported_module_is_named():
    class Odd(nn.Module):
        def forward(self, x):
            return x

    bm = compress.bayesianize(nn.Sequential(nn.Linear(3, 3), Odd(), nn.Linear(3, 2)))
    with pytest.raises(TypeError, match="'1'.*Odd"):
        compress.prune_and_quantize(bm)


# ------------------------------------------------------------------------- quantisation
def test_bits_and_grid():
    bm = _convnet(False)
    with torch.no_grad():
        for m in bm.modules():
            if isinstance(m, BayesLinear | BayesConv2d):
                m.weight_logvar.uniform_(-12, -6)
    small, rep = compress.prune_and_quantize(bm)
    assert len(rep.bits_list) == 4
    for name, bits in rep.bits.items():
        assert 2 <= bits <= 23
        w = dict(small.named_modules())[name].weight.detach().double()
        k = w / rep.steps[name]
        assert torch.allclose(k, k.round(), atol=1e-3)
        assert k.abs().max() <= 2 ** (bits - 1) - 1 + 1e-3
    assert rep.compression_precision > rep.compression_architecture >= 1.0
    assert "architecture" in rep.table()


def test_bits_rule():
    w = torch.tensor([1.0, -0.5, 0.25])
    # Delta / 2 <= s_ref: s_ref = 1/64 -> 1/(2u) = 32 -> b = 1 + ceil(log2 33) = 7
    assert compress.bits_from_variance(w, torch.tensor([(1 / 64) ** 2, 1.0])) == 7
    assert compress.bits_from_variance(w, torch.tensor([1e-30])) == 23
    assert compress.bits_from_variance(w, torch.tensor([100.0])) == 2
    wq, step = compress.quantize_fixed(torch.tensor([1.0, -0.4, 0.2, 0.1]), 3)
    assert step == pytest.approx(1 / 3)
    assert torch.allclose(wq, torch.tensor([1.0, -1 / 3, 1 / 3, 0.0]))


# ------------------------------------------------------------------------ training run
def test_short_training_on_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    bm = compress.bayesianize(nn.Sequential(nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 10)))
    hist = compress.train(bm, x[:1400], y[:1400], epochs=12, lr=5e-3, batch_size=128,
                          seed=0, progress=False)
    assert hist["nll"][-1] < 0.5 * hist["nll"][0] and hist["loss"][-1] < hist["loss"][0]
    assert compress.accuracy(bm, x[1400:], y[1400:]) > 0.9
    small, rep = compress.prune_and_quantize(bm)
    assert compress.accuracy(small, x[1400:], y[1400:]) > 0.85


def test_train_is_seeded_and_leaves_eval_mode():
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    hists = []
    for _ in range(2):
        torch.manual_seed(123)  # same initial weights
        bm = compress.bayesianize(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)))
        hists.append(compress.train(bm, x, y, epochs=3, batch_size=16, seed=7, progress=False))
        assert not bm.training
    assert hists[0] == hists[1] and set(hists[0]) == {"loss", "nll", "kl", "acc"}


def test_kl_warmup_ramps_the_kl_weight_linearly():
    """Epoch e of a warm-up over W epochs trains with kl_weight * (e + 1) / W."""
    x, y = torch.randn(48, 5), torch.randint(0, 3, (48,))

    def run(epochs, **kw):
        torch.manual_seed(5)
        bm = compress.bayesianize(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)))
        compress.train(bm, x, y, epochs=epochs, batch_size=16, seed=3, progress=False, **kw)
        return torch.cat([p.detach().flatten() for p in bm.parameters()])

    warm = run(1, kl_weight=0.1, kl_warmup=4)
    assert torch.equal(warm, run(1, kl_weight=0.025))  # first epoch: a quarter of the KL
    assert not torch.equal(warm, run(1, kl_weight=0.1))
    assert torch.equal(run(2, kl_weight=0.1, kl_warmup=1), run(2, kl_weight=0.1))
