"""Fully connected baselines (plain PyTorch, converter-compatible layers only)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["mlp", "sdqn_mlp", "lenet_300_100"]


def mlp(n_in: int, hidden: Sequence[int], n_out: int = 10) -> nn.Sequential:
    """Build a ReLU multilayer perceptron ``n_in - hidden... - n_out``.

    Parameters
    ----------
    n_in : int
        Number of input features (the input shape is ``(n_in,)``, batch excluded).
    hidden : sequence of int
        Widths of the hidden layers; each is followed by a ReLU.
    n_out : int, optional
        Number of output logits (no softmax inside the model).

    Returns
    -------
    torch.nn.Sequential
        Alternating ``Linear`` / ``ReLU`` layers ending with a ``Linear``.
    """
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def sdqn_mlp(n_in: int = 784, n_out: int = 10) -> nn.Sequential:
    """MLP of O'Connor & Welling, "Sigma Delta Quantized Networks" (ICLR 2017).

    The MNIST network of that paper is ``784-200-200-10`` with ReLU hidden units.
    ``sdqn_mlp(64)`` is the same topology for scikit-learn's 8x8 digits.

    Parameters
    ----------
    n_in : int, optional
        Input features: 784 for MNIST, 64 for scikit-learn digits.
    n_out : int, optional
        Number of classes.

    Returns
    -------
    torch.nn.Sequential
        ``Linear(n_in, 200) ReLU Linear(200, 200) ReLU Linear(200, n_out)``.
    """
    return mlp(n_in, (200, 200), n_out)


def lenet_300_100(n_in: int = 784, n_out: int = 10) -> nn.Sequential:
    """LeNet-300-100 (LeCun et al., "Gradient-based learning applied to document
    recognition", Proc. IEEE 1998), as used by Han et al. "Learning both Weights
    and Connections" (2015) and Louizos et al. "Bayesian Compression" (2017).

    Parameters
    ----------
    n_in : int, optional
        Input features: 784 for MNIST, 64 for scikit-learn digits.
    n_out : int, optional
        Number of classes.

    Returns
    -------
    torch.nn.Sequential
        ``Linear(n_in, 300) ReLU Linear(300, 100) ReLU Linear(100, n_out)``.
    """
    return mlp(n_in, (300, 100), n_out)
