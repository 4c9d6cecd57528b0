"""Small networks written the way the common families are written (random weights, 3x16x16)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPE = (3, 16, 16)


def conv_bn(c_in, c_out, k=3, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 8, 1))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, n_classes)

    def forward(self, x):
        x = self.maxpool(self.bn1(self.conv1(x)).relu())
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, stride, expand, act=nn.ReLU6, se=False):
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers = [conv_bn(c_in, hidden, 1, act=act)] if expand != 1 else []
        layers.append(conv_bn(hidden, hidden, 3, stride, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden))
        layers.append(conv_bn(hidden, c_out, 1, act=None))
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, max(c // r, 2), 1), nn.Conv2d(max(c // r, 2), c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class MobileNet(nn.Module):
    """V2 (ReLU6), V3-like (Hardswish, optional squeeze-and-excitation) or EfficientNet-B0-like
    (SiLU, squeeze-and-excitation) inverted residual stacks."""

    def __init__(self, act=nn.ReLU6, se=False, n_classes=5):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 8, 3, 2, act=act),
            InvertedResidual(8, 8, 1, 1, act, se), InvertedResidual(8, 12, 2, 4, act, se),
            InvertedResidual(12, 12, 1, 4, act, se), conv_bn(12, 24, 1, act=act))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(24, n_classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class VGG(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2))
        self.classifier = nn.Sequential(nn.Linear(16 * 4 * 4, 32), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(32, n_classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class Fire(nn.Module):
    def __init__(self, c_in, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2), Fire(16, 4, 8), Fire(16, 4, 8))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(16, n_classes, 1), nn.ReLU(True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class DenseLayer(nn.Module):
    def __init__(self, c_in, growth):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, 2 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        return torch.cat([x, self.conv2(F.relu(self.norm2(y)))], 1)


class DenseNet(nn.Module):
    """Pre-activation: BatchNorm after a concatenation and before the ReLU (an affine layer)."""

    def __init__(self, n_classes=5):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.block = nn.Sequential(DenseLayer(8, 4), DenseLayer(12, 4))
        self.transition = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 1, bias=False),
                                        nn.AvgPool2d(2, 2))
        self.norm5, self.fc = nn.BatchNorm2d(8), nn.Linear(8, n_classes)

    def forward(self, x):
        x = self.transition(self.block(self.conv0(x)))
        x = F.relu(self.norm5(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


def channel_shuffle(x, groups):
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: split the channels in two (stride 1) or feed both branches (stride 2),
    concatenate, shuffle (``torch.transpose`` of a grouped view, or ``nn.ChannelShuffle``)."""

    def __init__(self, c_in, c_out, stride=1, module_shuffle=False):
        super().__init__()
        b = c_out // 2
        self.stride = stride
        self.shuffle = nn.ChannelShuffle(2) if module_shuffle else None
        if stride > 1:
            self.branch1 = nn.Sequential(conv_bn(c_in, c_in, 3, stride, groups=c_in, act=None),
                                         conv_bn(c_in, b, 1))
        c2 = c_in if stride > 1 else b
        self.branch2 = nn.Sequential(conv_bn(c2, b, 1), conv_bn(b, b, 3, stride, groups=b, act=None),
                                     conv_bn(b, b, 1))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return self.shuffle(out) if self.shuffle is not None else channel_shuffle(out, 2)


class ShuffleNet(nn.Module):
    def __init__(self, n_classes=5, down=False):
        super().__init__()
        self.conv1 = conv_bn(3, 8, 3, 2)
        units = [ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, module_shuffle=True)] if down else \
            [ShuffleUnit(8, 8), ShuffleUnit(8, 8)]
        self.stage = nn.Sequential(*units)
        self.fc = nn.Linear(units[-1].branch2[-1][0].out_channels * 2, n_classes)

    def forward(self, x):
        return self.fc(self.stage(self.conv1(x)).mean([2, 3]))


class UNet(nn.Module):
    """Encoder-decoder with skip connections; ``up`` is "transpose" (ConvTranspose2d) or a mode
    of F.interpolate."""

    def __init__(self, up="transpose"):
        super().__init__()
        self.up_mode = up
        self.enc1, self.enc2 = conv_bn(3, 8), conv_bn(8, 16)
        self.up = nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1, output_padding=1)
        self.dec1 = conv_bn(24, 8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        if self.up_mode == "transpose":
            u = self.up(e2)
        elif self.up_mode == "bilinear_size":  # to the skip's size, corners aligned
            u = F.interpolate(e2, size=e1.shape[-2:], mode="bilinear", align_corners=True)
        else:
            u = F.interpolate(e2, scale_factor=2, mode=self.up_mode)
        return self.head(self.dec1(torch.cat([u, e1], 1)))


# name: factory; every one of these converts and simulates equal to the dense reference
CONVERTS = {
    "resnet": ResNet,
    "mobilenet_v2": MobileNet,
    "mobilenet_v3_no_se": lambda: MobileNet(act=nn.Hardswish),
    "efficientnet_b0_no_se": lambda: MobileNet(act=nn.SiLU),
    "vgg": VGG,
    "squeezenet": SqueezeNet,
    "densenet": DenseNet,
    "mobilenet_v3": lambda: MobileNet(act=nn.Hardswish, se=True),
    "efficientnet_b0": lambda: MobileNet(act=nn.SiLU, se=True),
    "unet_nearest": lambda: UNet("nearest"),
    "unet_bilinear": lambda: UNet("bilinear"),
    "unet_bilinear_size_aligned": lambda: UNet("bilinear_size"),
    "unet_transpose": UNet,
    "shufflenet_v2": ShuffleNet,
    "shufflenet_v2_down": lambda: ShuffleNet(down=True),
}

# name: (factory, what the error says): families needing what is not supported yet
REFUSED = {
    "unet_bicubic": (lambda: UNet("bicubic"), "bicubic upsampling is not supported"),
}


def make(factory, seed=0):
    torch.manual_seed(seed)
    m = factory()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m.eval()
