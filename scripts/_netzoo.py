"""The zoo benchmark of scripts/benchmark.py: common network styles against dense torch.

Five networks written the way their families are (VGG, one ResNet basic block, ResNet-18,
MobileNetV2, a depthwise-separable MobileNetV1-like net), random weights and BatchNorm
statistics calibrated on frames of a video other than the timed one (batch statistics of
``bigbuckbunny``, so that every layer's activations have the spread a trained network's
have), input 3x64x64. Each is converted at one herding scale and timed by
:func:`benchmark.bench_network` (dense torch and the event engine alternating, pass for pass).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ZOO", "zoo_model", "calibrate_bn", "bench_zoo", "zoo_from_args"]

SHAPE = (3, 64, 64)


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1, act=nn.ReLU):
    """Conv (no bias), BatchNorm and an activation (``act=None``: none)."""
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv-BN, a 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, 3, stride), conv_bn(c_out, c_out, 3, act=None))
        self.down = (conv_bn(c_in, c_out, 1, stride, act=None)
                     if stride != 1 or c_in != c_out else None)

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 projection (residual if it fits)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        layers = [conv_bn(c_in, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   conv_bn(hidden, c_out, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class _Head(nn.Module):
    """Features, global average pooling, a linear classifier (10 classes)."""

    def __init__(self, features: nn.Module, c: int):
        super().__init__()
        self.features, self.fc = features, nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def vgg() -> nn.Module:
    """VGG style: pairs of 3x3 conv-BN-ReLU (32, 64, 128 channels), max pooling after each."""
    return _Head(nn.Sequential(
        conv_bn(3, 32), conv_bn(32, 32), nn.MaxPool2d(2),
        conv_bn(32, 64), conv_bn(64, 64), nn.MaxPool2d(2),
        conv_bn(64, 128), conv_bn(128, 128), nn.MaxPool2d(2)), 128)


def resnet_block() -> nn.Module:
    """A 3x3 stem (32 channels) and one ResNet basic block at full resolution."""
    return _Head(nn.Sequential(conv_bn(3, 32), BasicBlock(32, 32)), 32)


def resnet18() -> nn.Module:
    """ResNet-18 layout (7x7/2 stem, 3x3/2 max pooling, 2+2+2+2 basic blocks) at a quarter
    of its widths (16, 32, 64, 128)."""
    w = (16, 32, 64, 128)
    blocks = [conv_bn(3, w[0], 7, 2), nn.MaxPool2d(3, 2, 1)]
    for i, c in enumerate(w):
        c_in = w[max(i - 1, 0)]
        blocks += [BasicBlock(c_in, c, 1 if i == 0 else 2), BasicBlock(c, c)]
    return _Head(nn.Sequential(*blocks), w[-1])


def mobilenet_v2() -> nn.Module:
    """MobileNetV2 style: a 3x3/2 stem and inverted residual blocks (expansion 6), 1x1 to 128."""
    return _Head(nn.Sequential(
        conv_bn(3, 16, 3, 2, act=nn.ReLU6), InvertedResidual(16, 16, 1, 1),
        InvertedResidual(16, 24, 2, 6), InvertedResidual(24, 24, 1, 6),
        InvertedResidual(24, 32, 2, 6), InvertedResidual(32, 32, 1, 6),
        conv_bn(32, 128, 1, act=nn.ReLU6)), 128)


def depthwise_separable() -> nn.Module:
    """MobileNetV1 style: a 3x3/2 stem, then 3x3 depthwise and 1x1 pointwise conv-BN-ReLU pairs."""
    layers = [conv_bn(3, 16, 3, 2)]
    for c_in, c_out, s in [(16, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2)]:
        layers += [conv_bn(c_in, c_in, 3, s, groups=c_in), conv_bn(c_in, c_out, 1)]
    return _Head(nn.Sequential(*layers), 128)


#: the zoo: name -> builder
ZOO = {"vgg": vgg, "resnet_block": resnet_block, "resnet18": resnet18,
       "mobilenet_v2": mobilenet_v2, "depthwise_separable": depthwise_separable}


def calibrate_bn(model: nn.Module, frames: np.ndarray) -> nn.Module:
    """Set every BatchNorm's running statistics to the batch statistics of ``frames``
    (one forward pass in training mode, cumulative average) and random affine parameters
    (scale in [0.5, 1.5], shift in [-0.2, 0.2]); returns the model in eval mode."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        model.train()
        model(torch.from_numpy(np.ascontiguousarray(frames, np.float32)))
    return model.eval()


def zoo_model(name: str, calib: np.ndarray, seed: int = 0) -> nn.Module:
    """Zoo network ``name`` with seeded random weights, BatchNorm calibrated on ``calib``."""
    if name not in ZOO:
        raise SystemExit(f"--zoo: unknown network {name!r}; one of {', '.join(ZOO)}")
    torch.manual_seed(seed)
    return calibrate_bn(ZOO[name](), calib)


def bench_zoo(names, frames: np.ndarray, calib: np.ndarray, dtypes, scale: float, repeats: int,
              bench_network, paths=("auto",)) -> list[dict]:
    """Per network, event dtype and conv path (``auto``: chosen per layer and frame):
    :func:`bench_network` on ``frames``, one row with speedup, its spread over passes and op
    reduction (the per-layer times are those of the last path)."""
    import sigmadelta as sd

    rows = []
    for name in names:
        net = sd.convert(zoo_model(name, calib), SHAPE, scale=scale)
        for dt in dtypes:
            r = bench_network(net, frames, dt, repeats, paths)
            for path, b in r["by_path"].items():
                rows.append({"network": name, "dtype": np.dtype(dt).name, "path": path,
                             "dense_dtype": r["dense_dtype"],
                             "speedup": b["speedup"], "speedup_spread": b["speedup_spread"],
                             "speedup_cpu": b["speedup_cpu"], "speedup_cpu_spread": b["speedup_cpu_spread"],
                             "op_reduction": r["op_reduction"], "event_fps": b["event_fps"],
                             "dense_fps": r["dense_fps"], "layers": r["layers"],
                             "conv_paths": b["conv_paths"]})
    return rows


def zoo_from_args(args, dtypes, bench_network, paths=("auto",)) -> list[dict]:
    """``--zoo``: each network on ``--frames`` frames of ``--video`` (default bikes) at 64x64,
    BatchNorm calibrated on 16 frames of bigbuckbunny, herding scale ``--scale``."""
    from sigmadelta.datasets import open_source

    names = args.zoo.split(",")
    if any(n not in ZOO for n in names):
        raise SystemExit(f"--zoo: unknown network in {args.zoo!r}; choose from {', '.join(ZOO)}")
    frames = np.stack(list(open_source(args.video or "bikes", size=(64, 64), gray=False,
                                       limit=args.frames))).astype(np.float32)
    calib = np.stack(list(open_source("bigbuckbunny", size=(64, 64), gray=False, limit=16)))
    rows = bench_zoo(names, frames, calib, dtypes, float(args.scale.split(",")[0]), args.repeats,
                     bench_network, paths)
    if not args.json:
        for r in rows:
            print(f"zoo {r['network']:>20} {r['dtype']} {r['path']} (torch {r['dense_dtype']}): "
                  f"speedup {r['speedup']:.2f}x (passes "
                  f"{r['speedup_spread'][0]:.2f}-{r['speedup_spread'][1]:.2f}x; thread CPU time "
                  f"{r['speedup_cpu']:.2f}x, {r['speedup_cpu_spread'][0]:.2f}-"
                  f"{r['speedup_cpu_spread'][1]:.2f}x), op reduction "
                  f"{r['op_reduction']:.1f}x, event {r['event_fps']:.0f} fps, dense "
                  f"{r['dense_fps']:.0f} fps")
    return rows
