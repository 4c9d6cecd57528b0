"""Bayesian compression (Louizos, Ullrich & Welling, NIPS 2017).

>>> from sigmadelta import compress
>>> bmodel = compress.bayesianize(model, prior="gnj")          # or "ghs"
>>> hist = compress.train(bmodel, x_train, y_train, epochs=300)  # CE + KL / n_train
>>> small, report = compress.prune_and_quantize(bmodel)          # plain model + report
>>> report.bits                                                   # {"0": 9, "2": 8, ...}

Only torch, numpy and tqdm are used.
"""

from .kl import (
    kl,
    kl_gaussian_std_normal,
    kl_log_uniform,
    kl_lognormal_gamma,
    kl_lognormal_invgamma,
)
from .layers import BayesConv2d, BayesLinear, GHSScale, GNJScale, bayesianize
from .prune import DEFAULT_THRESHOLD, DEFAULT_THRESHOLDS, masked_copy, plan_pruning
from .quant import CompressionReport, bits_from_variance, prune_and_quantize, quantize_fixed
from .train import SCALE_LR_MULT, accuracy, train

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_THRESHOLDS",
    "SCALE_LR_MULT",
    "BayesConv2d",
    "BayesLinear",
    "CompressionReport",
    "GHSScale",
    "GNJScale",
    "accuracy",
    "bayesianize",
    "bits_from_variance",
    "kl",
    "kl_gaussian_std_normal",
    "kl_log_uniform",
    "kl_lognormal_gamma",
    "kl_lognormal_invgamma",
    "masked_copy",
    "plan_pruning",
    "prune_and_quantize",
    "quantize_fixed",
    "train",
]
