"""Small models covering every supported layer type, and smooth test streams."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(12, 16), nn.Linear(16, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)).relu())


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(2, 6, 3, padding=1)
        self.c1 = nn.Conv2d(6, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 1)
        self.head = nn.Linear(6 * 8 * 8, 4)

    def forward(self, x):
        y = torch.relu(self.c0(x))
        y = y + F.relu(self.c1(y))
        y = torch.add(y, self.c2(y))
        return self.head(torch.flatten(y, 1))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(2, 3, 1)
        self.c = nn.Conv2d(7, 5, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], dim=1)
        return self.fc(self.pool(F.relu(self.c(y))).flatten(1))


class ViewFlatten(nn.Module):
    """Flatten by x.view(x.size(0), -1) after functional max pooling."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 4, 3, padding=1), nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


class ViewMinusOne(nn.Module):
    """x.view(-1, N) after functional average pooling with padding."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 3, 3), nn.Linear(3 * 7 * 7, 4)

    def forward(self, x):
        x = F.relu(F.avg_pool2d(self.conv(x), 2, stride=1, padding=1))
        return self.fc(x.view(-1, 3 * 7 * 7))


class ReshapeMean(nn.Module):
    """x.reshape(x.shape[0], -1) after adaptive pooling; x.mean((2, 3)) with and without keepdim."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4 * 2 * 2 + 4 + 4, 3)

    def forward(self, x):
        y = F.relu(self.a(x))
        p = F.adaptive_avg_pool2d(y, 2).reshape(y.shape[0], -1)
        m = y.mean((2, 3))
        k = torch.flatten(self.b(y.mean(dim=[2, 3], keepdim=True)), 1).squeeze(-1)
        return self.fc(torch.cat([p, m, F.adaptive_max_pool2d(y, 1).squeeze(-1).squeeze(-1) + k], 1))


class ConstantArithmetic(nn.Module):
    """x * 0.5, x / 6, x + 3, 3 - x, -x: folded into the conv before, or an affine layer."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 3, 3)
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x):
        y = F.relu6(self.a(x) * 0.5 + 3) / 6  # folds into a, then an affine layer after relu6
        z = 0.5 * (1 - self.b(y))  # folds into b
        z = torch.relu(z).sub(0.1).mul(2.0)  # an affine layer
        return -self.fc(torch.flatten(z, 1)) + 1  # folds into fc


class PreActBN(nn.Module):
    """BatchNorm not after a weight layer: on the input, after a ReLU, and on a vector."""

    def __init__(self):
        super().__init__()
        self.bn0, self.conv, self.bn1 = nn.BatchNorm2d(2), nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4)
        self.fc1, self.bn2, self.fc2 = nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)

    def forward(self, x):
        y = self.bn1(F.relu(self.conv(self.bn0(x))))
        return self.fc2(self.bn2(F.relu(self.fc1(y.flatten(1)))))


class Temporal1d(nn.Module):
    """Conv1d on (C, L) streams: BatchNorm1d, pooling, dilation, global mean."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv1d(3, 6, 5, padding=2), nn.BatchNorm1d(6)
        self.c2 = nn.Conv1d(6, 6, 3, stride=2, dilation=2, groups=2)
        self.c3, self.c4 = nn.Conv1d(6, 4, 1), nn.Conv1d(6, 4, 1)
        self.fc = nn.Linear(4 + 4 * 2, 3)

    def forward(self, x):
        y = F.max_pool1d(F.relu(self.bn(self.c1(x))), 2)  # (6, 10)
        y = F.relu(self.c2(y))  # (6, 3)
        z = self.c3(F.avg_pool1d(y, 2, stride=1))  # (4, 2)
        return self.fc(torch.cat([self.c4(y).mean(-1), z.flatten(1)], 1))


class Temporal1dUp(nn.Module):
    """ConvTranspose1d on (C, L) streams: stride, padding, output_padding, groups, dilation."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 3, stride=2)
        self.up1 = nn.ConvTranspose1d(4, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.up2 = nn.ConvTranspose1d(4, 2, 2, dilation=2)
        self.fc = nn.Linear(2 * 20, 3)

    def forward(self, x):
        y = F.relu(self.up1(F.relu(self.c1(x))))  # (4, 9) -> (4, 18)
        return self.fc(self.up2(y).flatten(1))  # (2, 20)


class Pointwise(nn.Module):
    """Every pointwise activation, as a module and in functional form."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(2, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.mods = nn.ModuleList([nn.Sigmoid(), nn.Tanh(), nn.GELU(), nn.GELU(approximate="tanh"),
                                   nn.SiLU(), nn.Hardswish(), nn.Hardsigmoid(), nn.ELU(0.7),
                                   nn.Softplus(2.0, 3.0), nn.Mish()])
        self.fc = nn.Linear(6 * 8 * 8, 12)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        y = self.c1(x) * 2.0
        y = sum(m(y) for m in self.mods)  # residual sums of ten activations of one conv
        z = self.c2(y)
        z = (torch.sigmoid(z) + torch.tanh(z) + F.gelu(z, approximate="tanh") + F.silu(z)
             + F.hardswish(z) + F.hardsigmoid(z) + F.elu(z, 0.5) + F.softplus(z, 1.5) + F.mish(z)
             + z.sigmoid() + z.tanh())
        return self.fc2(F.gelu(self.fc(torch.flatten(z, 1))))


class Gating(nn.Module):
    """Products of two changing signals: a gate per neuron and a squeeze-and-excitation gate."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(2, 4, 3, padding=1)
        self.se1, self.se2 = nn.Conv2d(4, 2, 1), nn.Conv2d(2, 4, 1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        y = self.a(x) * torch.sigmoid(self.b(x))
        s = F.hardsigmoid(self.se2(F.relu(self.se1(y.mean((2, 3), keepdim=True)))))
        return self.fc(torch.flatten(s * y, 1))


class Upsampling(nn.Module):
    """Nearest upsampling: nn.Upsample, F.interpolate by size, and on a (C, L) stream."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Conv2d(3, 2, 3)
        self.up = nn.Upsample(scale_factor=2)
        self.fc = nn.Linear(2 * 12 * 6, 3)

    def forward(self, x):
        y = F.relu(self.b(self.up(F.relu(self.a(x)))))  # (2, 6, 6)
        return self.fc(F.interpolate(y, size=(12, 6)).flatten(1))


class Decoder(nn.Module):
    """Transposed convs (stride, padding, output_padding, groups, dilation; BatchNorm folded)
    and bilinear resampling (to a size with aligned corners, by a non-integer factor)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.up1 = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.bn = nn.BatchNorm2d(4)
        self.up2 = nn.ConvTranspose2d(4, 3, 2, stride=1, dilation=2)
        self.b = nn.Conv2d(7, 2, 3, padding=1)

    def forward(self, x):
        y = F.relu(self.bn(self.up1(F.relu(self.a(x)))))  # (4, 8, 8)
        u = F.interpolate(self.up2(y), size=(8, 8), mode="bilinear", align_corners=True)  # 10x10 ->
        v = F.interpolate(F.interpolate(y, scale_factor=0.75, mode="bilinear"), size=(8, 8),
                          mode="bilinear")
        return self.b(torch.cat([u, v], 1))


class Routing(nn.Module):
    """Channel shuffle folded into the next conv, nn.ChannelShuffle, chunk and split."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 4, 1)
        self.shuffle = nn.ChannelShuffle(3)
        self.c = nn.Conv2d(2, 2, 3, padding=1, groups=2)
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        y = F.relu(self.a(x))  # (6, 8, 8)
        n, c, h, w = y.size()
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        z = F.relu(self.b(y))  # (4, 8, 8): the shuffle is folded into b's weights
        z1, z2 = z.split([2, 2], dim=1)
        p, q = torch.chunk(self.shuffle(torch.cat([z1, self.c(z2), z1], 1)), 2, 1)  # (3, 8, 8) each
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(p * 0.5 + torch.relu(q), 1), 1))


def _bn(m):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


C = (2, 8, 8)
ZOO = {
    # name: (factory, input_shape)
    "linear": (lambda: nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)), (12,)),
    "functional_relu": (FunctionalRelu, (12,)),
    "leaky_bn1d_dropout": (lambda: nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.LeakyReLU(0.1),
                                                 nn.Dropout(0.5), nn.Linear(16, 5)), (12,)),
    "relu6_hardtanh_identity": (lambda: nn.Sequential(nn.Linear(12, 16), nn.ReLU6(), nn.Identity(),
                                                      nn.Linear(16, 8), nn.Hardtanh(-0.5, 0.5),
                                                      nn.Linear(8, 3)), (12,)),
    "conv": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)), C),
    "conv_stride_pad_dil": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=2, dilation=2),
                                                  nn.ReLU(), nn.Conv2d(4, 3, (3, 1), padding=(1, 0))), C),
    "conv_groups_depthwise": (lambda: nn.Sequential(nn.Conv2d(2, 6, 3, padding=1, groups=2), nn.ReLU(),
                                                    nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.ReLU(),
                                                    nn.Conv2d(6, 2, 1)), C),
    "bn2d_maxpool": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                           nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(4, 3, 3)), C),
    "avgpool_adaptive": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                                               nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                                               nn.AvgPool2d(3, stride=1, padding=1), nn.ReLU(),
                                               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)), C),
    "nested_sequential": (lambda: nn.Sequential(
        nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU()),
        nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(108, 4)))), C),
    "residual": (Residual, C),
    "concat": (Concat, C),
    # input paths: one channel into a conv with 8 outputs (the spike map), six (the change mask)
    "gray_first_conv": (lambda: nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(),
                                              nn.Conv2d(8, 3, 3, padding=1)), (1, 11, 12)),
    "many_input_channels": (lambda: nn.Sequential(nn.Conv2d(6, 4, 3, padding=1), nn.ReLU(),
                                                  nn.Conv2d(4, 3, 3)), (6, 7, 8)),
    # idioms written in forward (sigmadelta.convert.idioms)
    "view_flatten": (ViewFlatten, C),
    "view_minus_one": (ViewMinusOne, C),
    "reshape_mean": (ReshapeMean, C),
    "constant_arithmetic": (ConstantArithmetic, C),
    "preact_batchnorm": (PreActBN, C),
    "conv1d": (Temporal1d, (3, 20)),
    "conv_transpose1d": (Temporal1dUp, (3, 20)),
    "pointwise_activations": (Pointwise, C),
    "gating": (Gating, C),
    "upsampling": (Upsampling, C),
    "decoder": (Decoder, C),
    "routing": (Routing, C),
}


def make(name, seed=0):
    factory, shape = ZOO[name]
    torch.manual_seed(seed)
    return _bn(factory()).eval(), shape


def smooth_stream(shape, t=12, seed=0, moving=0.5):
    """Frames in [0, 1] where a random subset of pixels drifts smoothly; the rest is static."""
    rng = np.random.default_rng(seed)
    base = rng.random(shape)
    mask = rng.random(shape) < moving
    phase = rng.random(shape) * 6.28
    frames = [base + mask * 0.15 * np.sin(0.4 * i + phase) for i in range(t)]
    return np.clip(np.stack(frames), 0, 1).astype(np.float32)


def ann(model, frames):
    with torch.no_grad():
        return model(torch.from_numpy(frames).float()).numpy()
