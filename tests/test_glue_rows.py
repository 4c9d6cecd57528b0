"""The glue ops by pixel rows against the neuron-list kernels they replace: the residual add
on two pixel-listed inputs (``kernels.add_rows`` against ``add_update`` on the expanded lists,
then whole networks with the add by rows against the add forced onto the neuron lists)."""

import numpy as np
import pytest
from _twins import both as _both
from _twins import listed as _listed
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta import kernels as K
from sigmadelta import ops


def _rows(rng, n_pix, frac, order):
    """A pixel list of about ``frac`` of ``n_pix`` pixels (all: ``frac`` 1), ascending or shuffled
    (a pixel conv lists reached pixels in reach order when few are reached)."""
    px = np.arange(n_pix) if frac >= 1 else np.flatnonzero(rng.random(n_pix) < frac)
    if order == "shuffled":
        px = rng.permutation(px)
    rows = np.zeros(n_pix + 1, np.int64)
    rows[: len(px)] = px
    return rows, np.array([len(px)], np.int64)


def _expand(rows, count, c):
    idx = (rows[: count[0], None] * c + np.arange(c)).ravel().astype(np.int64)
    t = np.zeros(len(rows) * c, np.int64)
    t[: len(idx)] = idx
    return t, np.array([len(idx)], np.int64)


@pytest.mark.parametrize("fa,fb", [(0.02, 0.05), (0.1, 0.03), (0.6, 0.3), (0.9, 0.85), (1, 0.4), (0.2, 1)])
@pytest.mark.parametrize("order", ["ascending", "shuffled"])
@pytest.mark.parametrize("c", [1, 5, 32])
def test_add_rows_equals_add_update_on_the_expanded_lists(fa, fb, order, c):
    """Same sums bit for bit, the same neuron list in the same order, and the same set as
    the twin's; float32, with ``y = a + b`` held before as the engine keeps it."""
    rng = np.random.default_rng(int(100 * fa + 10 * fb) + c)
    n_pix = 97
    n = n_pix * c
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    y = a + b
    ra, na = _rows(rng, n_pix, fa, order)
    rb, nb = _rows(rng, n_pix, fb, order)
    a[(ra[: na[0], None] * c + np.arange(c)).ravel()] += 1.5
    b[(rb[: nb[0], None] * c + np.arange(c)).ravel()] -= 0.5
    ta, ca = _expand(ra, na, c)
    tb, cb = _expand(rb, nb, c)
    old = [y.copy(), np.zeros(n, np.int64), np.zeros(1, np.int64), np.full(n, -1, np.int64)]
    K.add_update(a, b, old[0], ta, ca, tb, cb, old[1], old[2], old[3], 3)
    for expand in (True, False):
        args = (a, b, y.copy(), ra, na, rb, nb, c, np.zeros(n_pix + 1, np.int64), np.zeros(1, np.int64),
                expand, np.zeros(n, np.int64), np.zeros(1, np.int64), np.full(n, -1, np.int64), 3)
        _, new, _, twin = _both("add_rows", *args)
        np.testing.assert_array_equal(new[2], old[0])
        np.testing.assert_array_equal(new[2], twin[2])
        rows = new[8][: new[9][0]]
        assert _listed(new[8], new[9]) == _listed(twin[8], twin[9])
        np.testing.assert_array_equal((rows[:, None] * c + np.arange(c)).ravel(), old[1][: old[2][0]])
        if expand:  # the same neuron list in the same order
            np.testing.assert_array_equal(new[11][: new[12][0]], old[1][: old[2][0]])
        else:
            assert new[12][0] == 0


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("c", [1, 3, 19])
@pytest.mark.parametrize("frac", [0.0, 0.01, 0.5, 1.0])
def test_global_pool_rows_equals_pool_update(is_max, c, frac):
    """Global pooling of a pixel-listed input: the values pool_update gives on the expanded
    neuron list, bit for bit in float32 (same float64 sums in pixel order), the same list
    and stamps; and the twin's values."""
    rng = np.random.default_rng(int(10 * frac) + c)
    h, w = 9, 11
    n_pix, n = h * w, h * w * c
    x = rng.normal(size=n).astype(np.float32)
    rows, rc = _rows(rng, n_pix, frac, "shuffled")
    t, cnt = _expand(rows, rc, c)
    stamp = np.full(c, -1, np.int64)
    stamp[c // 2] = 4  # already listed this frame: skipped by both
    y0 = rng.normal(size=c).astype(np.float32)
    hw = np.array([h, w])
    old = [y0.copy(), np.zeros(c, np.int64), np.zeros(1, np.int64), stamp.copy()]
    K.pool_update(x, t, cnt, hw, c, np.array([1, 1]), hw, hw, np.array([0, 0]), is_max, old[0], old[1],
                  old[2], old[3], 4, np.zeros(n, np.uint8))
    args = (x, rc, c, is_max, y0.copy(), np.zeros(c, np.int64), np.zeros(1, np.int64), stamp.copy(), 4,
            np.zeros(c))
    _, new, _, twin = _both("global_pool_rows", *args)
    np.testing.assert_array_equal(new[4], old[0])
    np.testing.assert_allclose(new[4], twin[4], rtol=1e-6)
    np.testing.assert_array_equal(new[5][: new[6][0]], old[1][: old[2][0]])
    assert _listed(new[5], new[6]) == _listed(twin[5], twin[6])
    np.testing.assert_array_equal(new[7], old[3])


class _NeuronListAdd(ops.AddOp):
    """The add as it was: on the inputs' neuron lists (which the convs then fill)."""

    def __init__(self, node, ins, out):
        super().__init__(node, ins, out)
        self.c = 0


def _block():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = nn.Conv2d(3, 16, 3, padding=1)
            self.c1 = nn.Conv2d(16, 16, 3, padding=1)
            self.c2 = nn.Conv2d(16, 16, 3, padding=1)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            y = F.relu(self.c0(x))
            z = F.relu(self.c2(F.relu(self.c1(y))) + y)
            return self.fc(F.adaptive_avg_pool2d(z, 1).flatten(1))

    torch.manual_seed(3)
    return Block().eval(), (3, 12, 14)


_SLOW = pytest.mark.slow  # each case compiles its own loop (15-40 s on 2 cores): one in the quick run


@pytest.mark.parametrize("name, path", [
    ("residual", "scatter"), pytest.param("block", "dense", marks=_SLOW),
    pytest.param("residual", "dense", marks=_SLOW),
    pytest.param("residual", "auto", marks=_SLOW), pytest.param("block", "scatter", marks=_SLOW),
    pytest.param("block", "auto", marks=_SLOW),
])
def test_add_by_rows_keeps_outputs_and_counters(monkeypatch, name, path):
    """A network whose residual adds read pixel rows gives the outputs (bit for bit) and the
    counters of the same network with its adds on neuron lists, on every conv path."""
    model, shape = _block() if name == "block" else make(name)
    net = sd.convert(model, shape, scale=64.0)
    frames = smooth_stream(shape, t=10, moving=0.3)
    runs = []
    for cls in (ops.AddOp, _NeuronListAdd):
        monkeypatch.setattr(ops, "AddOp", cls)
        sim = sd.Simulator(net, dtype=np.float32)
        adds = [op.by_rows for op in sim._ops if isinstance(op, ops.AddOp)]
        sim.set_conv_path(path)
        runs.append((sim.run(frames, progress=False), adds))
    (new, adds_new), (old, adds_old) = runs
    assert any(adds_new) and not any(adds_old)  # "residual": its second add is on neuron lists
    np.testing.assert_array_equal(new.outputs, old.outputs)
    for k in ("events", "synops", "additions", "neuron_updates"):
        np.testing.assert_array_equal(getattr(new.stats, k), getattr(old.stats, k))
    ref = sd.reference(net, frames, progress=False)
    assert np.abs(new.outputs - ref).max() <= 1e-4 * max(np.ptp(ref), 1e-12)
