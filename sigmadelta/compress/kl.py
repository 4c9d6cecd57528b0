"""Closed-form and approximate KL divergences used by Bayesian compression.

All functions are differentiable torch expressions that return the *sum*
over the elements of their arguments.

Equations
---------
Weights given the group scale (both priors, paper eqs. 9-10 / section 3.2)::

    q(w~_ij) = N(theta_ij, sigma_ij^2),   p(w~_ij) = N(0, 1),   w_ij = z_i * w~_ij

which is the same as ``q(w|z) = N(z theta, z^2 sigma^2)`` against
``p(w|z) = N(0, z^2)``; ``z`` cancels and

    KL = 0.5 * sum(-log sigma^2 + sigma^2 + theta^2 - 1).

Normal posterior against the log-uniform prior ``p(z) ~ 1/|z|`` with
``q(z) = N(mu, mu^2 alpha)`` (Molchanov et al. 2017 approximation)::

    -KL ~= k1 * sigmoid(k2 + k3 log alpha) - 0.5 log1p(1/alpha) - k1,
    k1 = 0.63576, k2 = 1.87320, k3 = 1.48695.

Log-normal posterior ``q(x) = LN(mu, s^2)`` (``log x ~ N(mu, s^2)``) against
``Gamma(k, rate r)`` and ``InvGamma(k, scale b)``, using ``E[log x] = mu``,
``E[x] = exp(mu + s^2/2)``, ``E[1/x] = exp(-mu + s^2/2)`` and
``E[log q] = -mu - 0.5 log(2 pi s^2) - 0.5``::

    KL(LN || Gamma)    = -k mu - 0.5 log(2 pi s^2) - 0.5 - k log r + lgamma(k)
                         + r exp(mu + s^2/2)
    KL(LN || InvGamma) =  k mu - 0.5 log(2 pi s^2) - 0.5 - k log b + lgamma(k)
                         + b exp(-mu + s^2/2)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "K1",
    "K2",
    "K3",
    "kl",
    "kl_gaussian_std_normal",
    "kl_log_uniform",
    "kl_lognormal_gamma",
    "kl_lognormal_invgamma",
]

K1, K2, K3 = 0.63576, 1.87320, 1.48695


def kl_gaussian_std_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """``sum KL(N(mu, exp(logvar)) || N(0, 1))`` = 0.5 sum(-logvar + var + mu^2 - 1)."""
    return 0.5 * torch.sum(-logvar + logvar.exp() + mu.pow(2) - 1.0)


def kl_log_uniform(log_alpha: Tensor) -> Tensor:
    """Approximate ``sum KL(N(mu, mu^2 alpha) || p(z) ~ 1/|z|)``.

    ``KL ~= k1 - k1 sigmoid(k2 + k3 log alpha) + 0.5 log1p(exp(-log alpha))``;
    the additive constant is chosen so that ``KL -> 0`` as ``alpha -> inf``.
    """
    sig = torch.sigmoid(K2 + K3 * log_alpha)
    return torch.sum(K1 - K1 * sig + 0.5 * nn.functional.softplus(-log_alpha))


def _lognormal_entropy_part(mu: Tensor, logvar: Tensor) -> Tensor:
    """``E_q[log q] + mu = -0.5 log(2 pi s^2) - 0.5`` for ``q = LN(mu, s^2)``."""
    return -0.5 * (math.log(2 * math.pi) + logvar) - 0.5 + 0.0 * mu


def kl_lognormal_gamma(mu: Tensor, logvar: Tensor, shape: float, rate: float) -> Tensor:
    """``sum KL(LN(mu, exp(logvar)) || Gamma(shape, rate))`` (closed form, see module doc)."""
    k = shape
    const = -k * math.log(rate) + math.lgamma(k)
    val = (-k * mu + _lognormal_entropy_part(mu, logvar) + const
           + rate * torch.exp(mu + 0.5 * logvar.exp()))
    return val.sum()


def kl_lognormal_invgamma(mu: Tensor, logvar: Tensor, shape: float, scale: float) -> Tensor:
    """``sum KL(LN(mu, exp(logvar)) || InvGamma(shape, scale))`` (closed form)."""
    k = shape
    const = -k * math.log(scale) + math.lgamma(k)
    val = (k * mu + _lognormal_entropy_part(mu, logvar) + const
           + scale * torch.exp(-mu + 0.5 * logvar.exp()))
    return val.sum()


def kl(model: nn.Module) -> Tensor:
    """Sum of ``layer.kl()`` over every Bayesian group layer of ``model``.

    Returns a differentiable scalar tensor (zero if there is no Bayesian layer).
    Train with ``task_loss + kl(model) / n_train``.
    """
    total: Tensor | None = None
    for mod in model.modules():
        fn = getattr(mod, "kl", None)
        if getattr(mod, "_is_bayes_group_layer", False) and callable(fn):
            term = fn()
            total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total
