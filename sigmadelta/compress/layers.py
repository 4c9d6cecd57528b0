"""Variational group layers for Bayesian compression (Louizos et al. 2017).

Every weight is ``w_ij = z_g * w~_ij`` where ``g`` is the weight's group: the
*input neuron* ``j`` of a fully connected layer (pruning it removes a column,
hence the previous layer's output neuron) and the *output channel* ``i`` of a
convolution (pruning it removes a whole kernel / feature map).  Posteriors::

    q(w~_ij) = N(theta_ij, sigma_ij^2)                     (both priors)
    GNJ: q(z_g) = N(mu_g, mu_g^2 alpha_g)                  (normal-Jeffreys)
    GHS: z_g = s * z~_g,  s^2 = s_a s_b,  z~_g^2 = a_g b_g,  (horseshoe)
         q(s_a), q(s_b), q(a_g), q(b_g) all log-normal

Forward pass (training) uses the local reparameterisation trick: ``z`` is
sampled per example and, given ``z``, the pre-activation is Gaussian::

    Linear: m = (x*z) theta^T + b,     v = (x*z)^2 (sigma^2)^T
    Conv:   m = z * (conv(x, theta) + b),  v = z^2 * conv(x^2, sigma^2)
    out = m + sqrt(v) * eps,  eps ~ N(0, 1)

In eval mode (``model.eval()``) the posterior means are used: ``z = E[z]``,
``w~ = theta``; groups whose ``group_mask`` is 0 are zeroed in both modes.
(For convolutions the bias is scaled by ``z`` too, so a pruned channel is
exactly zero.)
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kl import kl_gaussian_std_normal, kl_log_uniform, kl_lognormal_gamma, kl_lognormal_invgamma

__all__ = ["BayesConv2d", "BayesLinear", "GHSScale", "GNJScale", "bayesianize"]

_EPS = 1e-8


class GNJScale(nn.Module):
    """Group normal-Jeffreys scales ``q(z_g) = N(mu_g, sigma_g^2)``, prior ``p(z) ~ 1/|z|``.

    ``log alpha_g = log sigma_g^2 - log mu_g^2`` (the group's dropout rate) and
    ``KL`` uses the Molchanov approximation (see :func:`kl.kl_log_uniform`).
    """

    def __init__(self, n_groups: int, init_mu: float = 1.0, init_logvar: float = -8.0) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.full((n_groups,), float(init_mu)))
        self.logvar = nn.Parameter(torch.full((n_groups,), float(init_logvar)))

    def sample(self, n: int) -> Tensor:
        eps = torch.randn(n, self.mu.numel(), device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + torch.exp(0.5 * self.logvar) * eps

    def mean(self) -> Tensor:
        return self.mu

    def second_moment(self) -> Tensor:
        return self.mu.pow(2) + self.logvar.exp()

    def log_alpha(self) -> Tensor:
        return self.logvar - torch.log(self.mu.pow(2) + _EPS)

    def kl(self) -> Tensor:
        return kl_log_uniform(self.log_alpha().clamp(-20.0, 20.0))


class GHSScale(nn.Module):
    """Group horseshoe scales with the log-normal parameterisation (paper section 3.2).

    Prior: ``s ~ C+(0, tau0)`` (one per layer), ``z~_g ~ C+(0, 1)``, written as
    ``s^2 = s_a s_b`` with ``s_a ~ Gamma(1/2, rate 1/tau0^2)``, ``s_b ~ InvGamma(1/2, 1)``
    and ``z~_g^2 = a_g b_g`` with ``a_g ~ Gamma(1/2, 1)``, ``b_g ~ InvGamma(1/2, 1)``
    (if ``X = A |n1|/|n2|`` then ``X^2 = (A^2 n1^2 / 2) (2 / n2^2)``).  Each factor
    has a log-normal posterior, so ``z_g = s z~_g`` is log-normal with::

        m_g = (mu_sa + mu_sb + mu_ag + mu_bg) / 2,   v_g = (v_sa + v_sb + v_ag + v_bg) / 4
        E[z] = exp(m + v/2),  E[z^2] = exp(2m + 2v),  log alpha = log(E[z^2]/E[z]^2 - 1)
                                                                = log(expm1(v))

    ``KL`` is the sum of the closed forms of :mod:`kl` for the four factors.
    """

    def __init__(self, n_groups: int, tau0: float = 1e-5, init_logvar: float = -8.0) -> None:
        super().__init__()
        self.tau0 = float(tau0)
        sa0 = math.log(0.5 * self.tau0**2)  # mode of the Gamma KL term
        self.sa_mu = nn.Parameter(torch.full((1,), sa0))
        self.sb_mu = nn.Parameter(torch.full((1,), -sa0))  # so that s ~= 1 at init
        self.sa_logvar = nn.Parameter(torch.full((1,), float(init_logvar)))
        self.sb_logvar = nn.Parameter(torch.full((1,), float(init_logvar)))
        self.a_mu = nn.Parameter(torch.zeros(n_groups))
        self.b_mu = nn.Parameter(torch.zeros(n_groups))
        self.a_logvar = nn.Parameter(torch.full((n_groups,), float(init_logvar)))
        self.b_logvar = nn.Parameter(torch.full((n_groups,), float(init_logvar)))

    def _log_moments(self) -> tuple[Tensor, Tensor]:
        m = 0.5 * (self.sa_mu + self.sb_mu + self.a_mu + self.b_mu)
        v = 0.25 * (self.sa_logvar.exp() + self.sb_logvar.exp()
                    + self.a_logvar.exp() + self.b_logvar.exp())
        return m, v

    def sample(self, n: int) -> Tensor:
        g = self.a_mu.numel()
        dev, dt = self.a_mu.device, self.a_mu.dtype
        e = torch.randn(4, n, g, device=dev, dtype=dt)
        log_s = 0.5 * (self.sa_mu + self.sa_logvar.mul(0.5).exp() * e[0, :, :1]
                       + self.sb_mu + self.sb_logvar.mul(0.5).exp() * e[1, :, :1])
        log_zt = 0.5 * (self.a_mu + self.a_logvar.mul(0.5).exp() * e[2]
                        + self.b_mu + self.b_logvar.mul(0.5).exp() * e[3])
        return torch.exp(log_s + log_zt)

    def mean(self) -> Tensor:
        m, v = self._log_moments()
        return torch.exp(m + 0.5 * v)

    def second_moment(self) -> Tensor:
        m, v = self._log_moments()
        return torch.exp(2 * m + 2 * v)

    def log_alpha(self) -> Tensor:
        _, v = self._log_moments()
        return torch.log(torch.expm1(v) + 1e-30)

    def kl(self) -> Tensor:
        out = kl_lognormal_gamma(self.sa_mu, self.sa_logvar, 0.5, 1.0 / self.tau0**2)
        out = out + kl_lognormal_invgamma(self.sb_mu, self.sb_logvar, 0.5, 1.0)
        out = out + kl_lognormal_gamma(self.a_mu, self.a_logvar, 0.5, 1.0)
        return out + kl_lognormal_invgamma(self.b_mu, self.b_logvar, 0.5, 1.0)


def _make_scale(prior: str, n_groups: int, tau0: float, z_logvar: float) -> nn.Module:
    if prior == "gnj":
        return GNJScale(n_groups, init_logvar=z_logvar)
    if prior == "ghs":
        return GHSScale(n_groups, tau0=tau0, init_logvar=z_logvar)
    raise ValueError(f"unknown prior {prior!r}; expected 'gnj' or 'ghs'")


class _BayesGroupLayer(nn.Module):
    """Shared parameters/KL of the group layers (see module docstring)."""

    _is_bayes_group_layer = True
    group_dim: int  # weight dimension indexed by the group (1: Linear inputs, 0: Conv outputs)

    def _init_params(self, weight: Tensor, bias: Tensor | None, n_groups: int, prior: str,
                     tau0: float, weight_logvar: float, z_logvar: float) -> None:
        self.prior = prior
        self.weight_mu = nn.Parameter(weight.detach().clone())
        self.weight_logvar = nn.Parameter(torch.full_like(weight.detach(), float(weight_logvar)))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.scale = _make_scale(prior, n_groups, tau0, z_logvar)
        self.register_buffer("group_mask", torch.ones(n_groups, dtype=weight.dtype))

    def kl(self) -> Tensor:
        """``KL(q(z)||p(z)) + KL(q(w~)||N(0,1))`` of this layer (masked groups included)."""
        return self.scale.kl() + kl_gaussian_std_normal(self.weight_mu, self.weight_logvar)

    def log_alpha(self) -> Tensor:
        """Per-group log dropout rate ``log Var[z]/E[z]^2``."""
        return self.scale.log_alpha()

    def _z(self, n: int) -> Tensor:
        if self.training:
            return self.scale.sample(n) * self.group_mask
        return (self.scale.mean() * self.group_mask).expand(n, -1)

    def _expand_group(self, v: Tensor) -> Tensor:
        shape = [1] * self.weight_mu.dim()
        shape[self.group_dim] = -1
        return v.view(shape)

    def effective_weight(self) -> Tensor:
        """Posterior-mean weight ``E[z] * theta`` (masked groups zeroed)."""
        z = self.scale.mean() * self.group_mask
        return self.weight_mu * self._expand_group(z)

    def effective_bias(self) -> Tensor | None:
        """Bias of the deterministic layer (conv biases are scaled by ``E[z]``)."""
        return self.bias

    def weight_variance(self) -> Tensor:
        """Marginal posterior variance of ``w = z w~`` (paper section 4)::

            Var[w] = E[z^2] (theta^2 + sigma^2) - E[z]^2 theta^2
        """
        ez = self._expand_group(self.scale.mean())
        ez2 = self._expand_group(self.scale.second_moment())
        th2 = self.weight_mu.pow(2)
        return ez2 * (th2 + self.weight_logvar.exp()) - ez.pow(2) * th2


class BayesLinear(_BayesGroupLayer):
    """Fully connected group layer; groups = input neurons (``in_features`` groups)."""

    group_dim = 1

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 prior: str = "gnj", tau0: float = 1e-5, weight_logvar: float = -9.0,
                 z_logvar: float = -8.0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        w = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        b = torch.zeros(out_features) if bias else None
        self._init_params(w, b, in_features, prior, tau0, weight_logvar, z_logvar)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        z = self._z(max(1, lead.numel())).reshape(*lead, self.in_features)
        xz = x * z
        mean = F.linear(xz, self.weight_mu, self.bias)
        if not self.training:
            return mean
        var = F.linear(xz.pow(2), self.weight_logvar.exp())
        return mean + torch.sqrt(var + _EPS) * torch.randn_like(mean)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"prior={self.prior!r}"


class BayesConv2d(_BayesGroupLayer):
    """2-D convolution group layer; groups = output channels (``out_channels`` groups)."""

    group_dim = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, bias: bool = True, prior: str = "gnj",
                 tau0: float = 1e-5, weight_logvar: float = -9.0, z_logvar: float = -8.0) -> None:
        super().__init__()
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        bias=bias)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = ref.kernel_size, ref.stride
        self.padding, self.dilation = ref.padding, ref.dilation
        self._init_params(ref.weight, ref.bias, out_channels, prior, tau0, weight_logvar,
                          z_logvar)

    def _conv(self, x: Tensor, w: Tensor) -> Tensor:
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation)

    def forward(self, x: Tensor) -> Tensor:
        out = self._conv(x, self.weight_mu)
        if self.training:
            var = self._conv(x.pow(2), self.weight_logvar.exp())
            out = out + torch.sqrt(var + _EPS) * torch.randn_like(out)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out * self._z(out.shape[0])[:, :, None, None]

    def effective_bias(self) -> Tensor | None:
        if self.bias is None:
            return None
        return self.bias * self.scale.mean() * self.group_mask

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
               f"stride={self.stride}, padding={self.padding}, prior={self.prior!r}"


def _convert(mod: nn.Module, **kw) -> nn.Module:
    if isinstance(mod, nn.Linear):
        new = BayesLinear(mod.in_features, mod.out_features, mod.bias is not None, **kw)
    elif isinstance(mod, nn.Conv2d):
        if mod.groups != 1 or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise ValueError(f"bayesianize: Conv2d {mod} needs groups=1, integer zero padding")
        new = BayesConv2d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride,
                          mod.padding, mod.dilation, mod.bias is not None, **kw)
    else:
        return mod
    with torch.no_grad():
        new.weight_mu.copy_(mod.weight)
        if mod.bias is not None:
            new.bias.copy_(mod.bias)
    return new.to(device=mod.weight.device, dtype=mod.weight.dtype)


def bayesianize(model: nn.Module, prior: str = "gnj", tau0: float = 1e-5,
                weight_logvar: float = -9.0, z_logvar: float = -8.0) -> nn.Module:
    """Return a deep copy of ``model`` with every ``nn.Linear``/``nn.Conv2d`` replaced.

    Parameters
    ----------
    model : nn.Module
        Any module; other submodules are kept unchanged.
    prior : {"gnj", "ghs"}
        Group normal-Jeffreys or group horseshoe.
    tau0 : float
        Global half-Cauchy scale of the horseshoe (GHS only).
    weight_logvar, z_logvar : float
        Initial ``log sigma^2`` of ``w~`` and of the group variables.  ``theta`` is
        initialised from the model's weights, ``E[z] = 1``.
    """
    kw = dict(prior=prior, tau0=tau0, weight_logvar=weight_logvar, z_logvar=z_logvar)
    _make_scale(prior, 1, tau0, z_logvar)  # validates ``prior``
    model = copy.deepcopy(model)
    if isinstance(model, nn.Linear | nn.Conv2d):
        return _convert(model, **kw)
    for name, child in list(model.named_children()):
        new = _convert(child, **kw)
        if new is child:
            new = bayesianize(child, **kw) if any(True for _ in child.children()) else child
        setattr(model, name, new)
    return model
