"""The threshold quantizer follows Intel Lava's float SigmaDelta neuron step for step.

Lava (lava-nc) is not installable here, so this test re-states its float process
models in NumPy, as documented for ``lava.proc.sdn`` (Delta, Sigma, SigmaDelta with
``cum_error=False``), and chains them without Lava's one-frame-per-layer latency:

    Delta / SigmaDelta encoder:   delta = act - act_prev + residue
                                  s     = delta if |delta| >= vth else 0
                                  residue = delta - s;  act_prev = act
    Sigma decoder (Dense + Sigma): sigma += W @ s
    SigmaDelta activation:         act = relu(sigma + bias)
"""

import numpy as np
import torch.nn as nn

import sigmadelta as sd


class _LavaDelta:
    def __init__(self, n, vth):
        self.act = np.zeros(n)
        self.residue = np.zeros(n)
        self.vth = vth

    def __call__(self, act):
        delta = act - self.act + self.residue
        s = np.where(np.abs(delta) >= self.vth, delta, 0.0)
        self.residue = delta - s
        self.act = act
        return s


def _lava_run(model, frames, vth):
    layers = [m for m in model if isinstance(m, nn.Linear)]
    w = [m.weight.detach().double().numpy() for m in layers]
    b = [m.bias.detach().double().numpy() for m in layers]
    enc = [_LavaDelta(x.shape[1], vth) for x in w]
    sigma = [np.zeros(x.shape[0]) for x in w]
    outs = []
    for frame in frames.astype(np.float64):
        act = frame
        for i in range(len(w)):
            sigma[i] = sigma[i] + w[i] @ enc[i](act)
            act = sigma[i] + b[i]
            if i < len(w) - 1:
                act = np.maximum(act, 0.0)  # SigmaDelta with act_mode RELU
        outs.append(act)
    return np.stack(outs)


def test_threshold_quantizer_equals_lava_float_sigma_delta():
    import torch

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    rng = np.random.default_rng(3)
    base = rng.random(12)
    frames = np.stack([base + 0.2 * np.sin(0.3 * t + 7 * base) for t in range(40)]).astype(np.float32)
    events = []
    for vth in (0.0, 0.01, 0.05, 0.2):
        net = sd.convert(model, (12,), quantizer="threshold", threshold=vth)
        ours = sd.simulate(net, frames, progress=False)
        lava = _lava_run(model, frames, vth)
        np.testing.assert_allclose(ours.outputs, lava, rtol=0, atol=1e-12)
        events.append(ours.stats.events.sum())
    assert events == sorted(events, reverse=True) and events[-1] < events[0]
