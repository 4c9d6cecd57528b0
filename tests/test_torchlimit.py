"""The library's own torch passes run on ``torch_threads`` intra-op threads and restore the count.

torch is set to 3 threads (not what the library sets) for each test; the count inside a call is
read from the call's own callbacks (a module's forward while ``convert`` traces it, the frames
generator ``reference`` consumes, ``evaluate``'s quantizer, the scale search's fit), and the
count after the call (also after an exception) must be 3 again. Outputs must not depend on it.
"""

import threading

import numpy as np
import pytest
import torch
from _zoo import make, smooth_stream
from torch import nn

import sigmadelta as sd
from sigmadelta import demo, scales
from sigmadelta.dense import evaluate
from sigmadelta.torchlimit import check_torch_threads, torch_limit


@pytest.fixture(autouse=True)
def torch_at_3():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


class Spy(nn.Module):
    """The identity; notes torch's thread count whenever it runs (also while being traced)."""

    def __init__(self, seen: list):
        super().__init__()
        self.seen = seen

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return x


def watched(frames, seen: list):
    for f in frames:
        seen.append(torch.get_num_threads())
        yield f


@pytest.fixture(scope="module")
def net_frames():
    model, shape = make("conv")
    return model, shape, sd.convert(model, shape, scale=8.0), smooth_stream(shape, t=5)


def _same_nets(a, b):
    for la, lb in zip(a.weight_layers, b.weight_layers, strict=True):
        np.testing.assert_array_equal(la.weight, lb.weight)
        np.testing.assert_array_equal(la.bias, lb.bias)


@pytest.mark.parametrize("limit", [1, 2])
def test_convert_holds_the_limit_and_restores(limit):
    seen = []
    model = nn.Sequential(nn.Linear(6, 4), Spy(seen), nn.ReLU(), nn.Linear(4, 2))
    net = sd.convert(model, (6,), torch_threads=limit)
    assert seen and set(seen) == {limit}
    assert torch.get_num_threads() == 3
    seen.clear()
    _same_nets(net, sd.convert(model, (6,), torch_threads=None))
    assert set(seen) == {3}  # None leaves torch alone


def test_convert_restores_after_an_error():
    with pytest.raises(sd.UnsupportedLayerError):
        sd.convert(nn.Sequential(nn.Linear(6, 4), nn.LSTM(4, 4)), (6,))
    assert torch.get_num_threads() == 3


def test_reference_holds_the_default_of_one_and_restores(net_frames):
    _, _, net, frames = net_frames
    seen = []
    out = sd.reference(net, watched(frames, seen), progress=False)
    assert len(seen) == len(frames) and set(seen) == {1}
    assert torch.get_num_threads() == 3
    np.testing.assert_array_equal(out, sd.reference(net, frames, progress=False, torch_threads=None))
    np.testing.assert_array_equal(out, sd.simulate(net, frames).outputs)


def test_reference_restores_after_an_error(net_frames):
    _, _, net, frames = net_frames
    bad = list(frames[:2]) + [np.full_like(frames[0], np.nan)]
    with pytest.raises(ValueError):
        sd.reference(net, bad, progress=False)
    assert torch.get_num_threads() == 3


def test_evaluate_holds_the_limit_and_restores_after_an_error(net_frames):
    _, _, net, frames = net_frames
    x = torch.from_numpy(np.asarray(frames, np.float64))
    seen = []

    def quantize(j, node, a):
        seen.append(torch.get_num_threads())
        return a

    y = evaluate(net, x, quantize, torch_threads=2)
    assert seen and set(seen) == {2} and torch.get_num_threads() == 3
    torch.testing.assert_close(y, evaluate(net, x, torch_threads=None), rtol=0, atol=0)

    def fails(j, node, a):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        evaluate(net, x, fails)
    assert torch.get_num_threads() == 3


def test_optimize_scales_holds_the_limit_and_restores(net_frames, monkeypatch):
    model, shape, _, frames = net_frames
    seen, fit = [], scales._fit
    monkeypatch.setattr(scales, "_fit", lambda *a: (seen.append(torch.get_num_threads()), fit(*a)))
    kw = dict(lam=0.1, loss="l2", epochs=2, window=3, progress=False)
    k1 = sd.optimize_scales(model, frames, shape, **kw)
    assert seen == [1] and torch.get_num_threads() == 3
    k0 = sd.optimize_scales(model, frames, shape, torch_threads=None, **kw)
    assert seen == [1, 3]
    assert k1.keys() == k0.keys()
    np.testing.assert_allclose([k1[n] for n in k1], [k0[n] for n in k0], rtol=1e-9)
    with pytest.raises(ValueError, match="lam"):
        sd.optimize_scales(model, frames, shape, lam=-1.0)
    monkeypatch.setattr(scales, "_fit", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        sd.optimize_scales(model, frames, shape, **kw)
    assert torch.get_num_threads() == 3


def test_demo_runs_inside_the_limit_and_restores(monkeypatch):
    import sigmadelta.demo_face as demo_face

    seen = []

    def chain(*args):
        seen.append(torch.get_num_threads())
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_face, "run_face_chain", chain)
    with pytest.raises(KeyboardInterrupt):
        demo.run_face_demo()
    assert seen == [1] and torch.get_num_threads() == 3


def test_blocks_nest_and_each_thread_keeps_its_own_count():
    with torch_limit(2):
        assert torch.get_num_threads() == 2
        with torch_limit(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_limit(None):
            assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 3
    entered, leave, seen = threading.Event(), threading.Event(), []

    def other():
        with torch_limit(1):
            entered.set()
            leave.wait(10)
            seen.append(torch.get_num_threads())

    t = threading.Thread(target=other)
    t.start()
    entered.wait(10)
    with torch_limit(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 3
    leave.set()
    t.join()
    assert seen == [1] and torch.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.0, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="torch_threads"):
        check_torch_threads(bad)
    with pytest.raises(ValueError, match="torch_threads"):
        sd.convert(nn.Sequential(nn.Linear(2, 2)), (2,), torch_threads=bad)
    assert torch.get_num_threads() == 3
