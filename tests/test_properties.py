"""Property-based: random networks and random streams with exact repeats.

For every drawn network (Linear / Conv2d with random stride, padding, dilation and
groups, activations, pooling, residual add, channel concat) and stream:

* the event simulation equals the dense reference ``sd.reference`` (float64: to
  rounding; fixed point: bit for bit, or both raise the same overflow);
* a frame equal to the one before costs nothing (no event, synop, addition or update);
* a stream fed in pieces (``run`` of random lengths, ``step``, any ``chunk``) gives
  exactly the outputs and counters of the whole stream;
* the network file and the run recording round-trip through HDF5 unchanged.

``make test`` runs a few derandomized examples (profile ``ci`` in conftest.py);
``--hypothesis-profile=long`` searches much longer. Everything runs in float64 so that
the compiled frame loop is specialised once.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given
from hypothesis import strategies as st

import sigmadelta as sd

ACTS = {"relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.1), "relu6": nn.ReLU6,
        "hardtanh": lambda: nn.Hardtanh(-0.5, 0.5), "none": nn.Identity}


class Block(nn.Module):
    """One drawn block: ``conv`` (then an activation), ``pool``, ``res`` (x + act(conv(x)))
    or ``cat`` (cat[conv_a(x), conv_b(x)])."""

    def __init__(self, kind, layers, act):
        super().__init__()
        self.kind, self.layers, self.act = kind, nn.ModuleList(layers), ACTS[act]()

    def forward(self, x):
        if self.kind == "conv":
            return self.act(self.layers[0](x))
        if self.kind == "pool":
            return self.layers[0](x)
        if self.kind == "res":
            return x + self.act(self.layers[0](x))
        return torch.cat([self.act(self.layers[0](x)), self.layers[1](x)], dim=1)


class Net(nn.Module):
    def __init__(self, blocks, head):
        super().__init__()
        self.blocks, self.head = nn.ModuleList(blocks), nn.Sequential(*head)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def _out(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_nets(draw):
    """A random conv network and its input shape (channels, height, width)."""
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(5, 10)), draw(st.integers(5, 10))
    shape, blocks = (c, h, w), []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "res", "cat"]))
        act = draw(st.sampled_from(sorted(ACTS)))
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
            c_out = groups * draw(st.integers(1, 3))
            k, s, p, d = (draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 2)),
                          draw(st.integers(1, 2)))
            oh, ow = _out(h, k, s, p, d), _out(w, k, s, p, d)
            if min(oh, ow) < 1:
                continue
            layers = [nn.Conv2d(c, c_out, k, stride=s, padding=p, dilation=d, groups=groups)]
            c, h, w = c_out, oh, ow
        elif kind == "pool":
            if draw(st.booleans()) and min(h, w) >= 2:
                layers = [draw(st.sampled_from([nn.MaxPool2d, nn.AvgPool2d]))(2)]
                h, w = h // 2, w // 2
            else:
                layers = [draw(st.sampled_from([nn.MaxPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1)]))]
        elif kind == "res":
            layers = [nn.Conv2d(c, c, 3, padding=1)]
        else:
            ca, cb = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            layers = [nn.Conv2d(c, ca, 3, padding=1), nn.Conv2d(c, cb, 1)]
            c = ca + cb
        blocks.append(Block(kind, layers, act))
    head = []
    if draw(st.booleans()):  # a dense head
        head = [nn.Flatten(), nn.Linear(c * h * w, draw(st.integers(1, 5)))]
    elif not any(b.kind in ("conv", "res", "cat") for b in blocks):
        head = [nn.Conv2d(c, 2, 1)]  # at least one weight layer
    return Net(blocks, head), shape


@st.composite
def mlps(draw):
    n = draw(st.integers(2, 12))
    layers, width = [], n
    for _ in range(draw(st.integers(1, 3))):
        out = draw(st.integers(1, 10))
        layers += [nn.Linear(width, out), ACTS[draw(st.sampled_from(sorted(ACTS)))]()]
        width = out
    return nn.Sequential(*layers), (n,)


@st.composite
def cases(draw):
    model, shape = draw(st.one_of(conv_nets(), mlps()))
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    for m in model.modules():  # fresh parameters (hypothesis shrinks the seed, not weights)
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.uniform_(m.weight, -0.6, 0.6)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    model.eval()
    # a stream: each frame repeats the last exactly, changes a few values, or is new
    rng = np.random.default_rng(seed)
    t = draw(st.integers(2, 9))
    frames = [rng.random(shape)]
    for _ in range(t - 1):
        how = draw(st.sampled_from(["repeat", "sparse", "new"]))
        last = frames[-1]
        if how == "repeat":
            frames.append(last.copy())
        elif how == "sparse":
            f = last.copy().ravel()
            idx = rng.choice(f.size, size=max(1, f.size // 10), replace=False)
            f[idx] = rng.random(len(idx))
            frames.append(f.reshape(shape))
        else:
            frames.append(rng.random(shape))
    quant = draw(st.sampled_from(["herding", "threshold"]))
    kw = (dict(scale=draw(st.sampled_from([4.0, 16.0, 64.0]))) if quant == "herding"
          else dict(quantizer="threshold", threshold=draw(st.sampled_from([0.0, 0.01, 0.05]))))
    cuts = sorted(draw(st.lists(st.integers(1, t - 1), max_size=3, unique=True)))
    return model, shape, np.stack(frames), kw, cuts, draw(st.integers(1, 5)), draw(st.integers(4, 8))


def _pieces(net, frames, cuts, chunk):
    """Run the stream in pieces: ``run`` between cuts, the last piece frame by frame."""
    sim = sd.Simulator(net, chunk=chunk)
    bounds = [0, *cuts, len(frames)]
    outs, rows = [], []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b == len(frames) and len(bounds) > 2:
            for f in frames[a:b]:
                outs.append(sim.step(f)[None])
                rows.append(sim.last_stats.copy()[None])
        else:
            res = sim.run(frames[a:b], progress=False)
            outs.append(res.outputs)
            rows.append(np.stack([res.stats.events, res.stats.synops, res.stats.additions,
                                  res.stats.neuron_updates], axis=1))
    return np.concatenate(outs), np.concatenate(rows)


@given(cases())
def test_random_networks_and_streams(tmp_path_factory, case):
    model, shape, frames, kw, cuts, chunk, bits = case
    net = sd.convert(model, shape, **kw)
    res = sd.simulate(net, frames, progress=False)
    ref = sd.reference(net, frames, progress=False)
    np.testing.assert_allclose(res.outputs, ref, rtol=1e-7, atol=1e-9 * max(1.0, np.abs(ref).max()))

    s = res.stats
    repeats = [i for i in range(1, len(frames)) if np.array_equal(frames[i], frames[i - 1])]
    for c in (s.events, s.synops, s.additions, s.neuron_updates):
        assert (c[repeats] == 0).all()

    outs, rows = _pieces(net, frames, cuts, chunk)
    np.testing.assert_array_equal(outs, res.outputs)
    whole = np.stack([s.events, s.synops, s.additions, s.neuron_updates], axis=1)
    np.testing.assert_array_equal(rows, whole)

    d = tmp_path_factory.mktemp("rt")
    sd.save(net, d / "net.h5")
    back = sd.load(d / "net.h5")
    again = sd.simulate(back, frames, progress=False, record=str(d / "run.h5"))
    np.testing.assert_array_equal(again.outputs, res.outputs)
    rec_stats, rec_out, complete = sd.read_run(d / "run.h5")
    assert complete
    np.testing.assert_array_equal(rec_out, res.outputs.astype(rec_out.dtype))
    np.testing.assert_array_equal(rec_stats.synops, s.synops)

    if kw.get("quantizer", "herding") == "herding":  # fixed point: bit for bit, or both refuse
        fixed = sd.convert(model, shape, weight_bits=bits, **kw)
        try:
            expected = sd.reference(fixed, frames, progress=False)
        except sd.AccumulatorOverflowError:
            with pytest.raises(sd.AccumulatorOverflowError):
                sd.simulate(fixed, frames, progress=False)
        else:
            np.testing.assert_array_equal(sd.simulate(fixed, frames, progress=False).outputs, expected)

