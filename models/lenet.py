"""Caffe LeNet-5 (plain PyTorch, converter-compatible layers only)."""

from __future__ import annotations

from torch import nn

__all__ = ["lenet5_caffe"]


def _after_conv_pool(size: int, kernel: int, padding: int) -> int:
    """Spatial size after a stride-1 convolution followed by a 2x2 max-pool."""
    conv = size + 2 * padding - kernel + 1
    if conv < 2:
        raise ValueError(f"input too small: conv output {conv} (size={size}, padding={padding})")
    return conv // 2


def lenet5_caffe(
    in_size: int = 28, padding: int | None = None, in_channels: int = 1, n_out: int = 10,
    channels: tuple[int, int] = (20, 50), hidden: int = 500,
) -> nn.Sequential:
    """LeNet-5 in its Caffe variant ("lenet_train_test.prototxt" of BVLC Caffe).

    ``conv 20@5x5 -> maxpool 2 -> conv 50@5x5 -> maxpool 2 -> fc 500 -> ReLU -> fc 10``,
    as used by Louizos, Ullrich & Welling, "Bayesian Compression for Deep Learning"
    (NeurIPS 2017). As in Caffe there is no nonlinearity after the convolutions
    (max-pooling follows them directly) and one ReLU after the 500-unit layer.

    For 8x8 inputs (scikit-learn digits) the unpadded network does not fit
    (8 -> 4 -> 2 -> 1 -> nothing), so the convolutions get ``padding=2``
    ("same" convolutions): 8x8 -> 8x8 -> 4x4 -> 4x4 -> 2x2, i.e. a 200-d input to
    the 500-unit layer. The model then takes raw 8x8 frames, no resampling needed.

    Parameters
    ----------
    in_size : int, optional
        Height and width of the (square) input; input shape is ``(in_channels, in_size,
        in_size)``.
    padding : int or None, optional
        Zero padding of both convolutions. ``None`` picks 0 when ``in_size >= 28``
        (the original network) and 2 otherwise.
    in_channels : int, optional
        Input channels.
    n_out : int, optional
        Number of classes.
    channels : (int, int), optional
        Output channels of the two convolutions (20, 50 in Caffe; fewer for a
        network pruned by Bayesian compression).
    hidden : int, optional
        Width of the fully connected hidden layer (500 in Caffe).

    Returns
    -------
    torch.nn.Sequential
        The network; outputs logits (no softmax).
    """
    if padding is None:
        padding = 0 if in_size >= 28 else 2
    s1 = _after_conv_pool(in_size, 5, padding)
    s2 = _after_conv_pool(s1, 5, padding)
    c1, c2 = (int(c) for c in channels)
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 5, padding=padding),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=padding),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * s2 * s2, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    )
