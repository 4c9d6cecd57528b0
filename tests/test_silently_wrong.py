"""Cases that used to run and give wrong results: each is now right or refused with a clear error."""

import threading

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _zoo import ann, make, smooth_stream

import sigmadelta as sd
from sigmadelta.fixedpoint import quantize_weights
from sigmadelta.io import FormatError
from sigmadelta.opcheck import ProgramError


def _rel_err(a, b):
    return np.abs(a - b).max() / max(np.ptp(b), 1e-12)


# ---------------------------------------------------------------- Linear on an image, op bounds
def test_linear_on_conv_output_is_refused_and_bad_programs_never_run():
    with pytest.raises(sd.UnsupportedLayerError, match=r"\(4, 6, 6\).*torch\.flatten"):
        sd.convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(6, 2)), (3, 8, 8))

    model, shape = make("conv")  # conv -> relu -> flatten -> Linear(144, 3)
    net = sd.convert(model, shape)
    dense = net.weight_layers[-1]
    dense.weight = np.zeros((3, 6), np.float32)  # after construction: a deliberately broken net
    with pytest.raises(ProgramError, match=r"weights \(6, 3\) for 144 inputs"):
        sd.Simulator(net)
    with pytest.raises(sd.NetworkError, match="weight has shape"):
        net.validate()
    net = sd.convert(model, shape)
    net.nodes[3].shape = (100,)  # flatten of 144 values claiming 100
    with pytest.raises(ProgramError, match="node 3 .*FlattenOp"):
        sd.Simulator(net)


# ---------------------------------------------------------------- fixed-point overflow
def _two_by_two(acc_bits=32):
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[127.0, 0.0], [0.0, 4.0]]) / 127)
    return sd.convert(lin, (2,), scale=1.0, weight_bits=8, acc_bits=acc_bits)


def test_fixed_point_overflow_is_caught_before_it_wraps():
    net = _two_by_two()
    frames = np.array([[3.0, 3.0], [3.0, 2.0**62]])
    sim = sd.Simulator(net)
    np.testing.assert_allclose(sim.step(frames[0]), [3.0, 12 / 127], rtol=1e-6)
    with pytest.raises(sd.AccumulatorOverflowError, match="frame 1, input neuron 1") as e:
        sim.step(frames[1])
    msg = str(e.value)
    assert f"round(k*x) = {2**62}" in msg and f"could reach {2**62 * 127}" in msg  # not wrapped
    assert "smaller scale" in msg
    with pytest.raises(sd.AccumulatorOverflowError):
        sd.simulate(net, frames, progress=False)
    with pytest.raises(sd.AccumulatorOverflowError, match=f"could reach {2**62 * 127}.*dense reference"):
        sd.reference(net, frames, progress=False)


@pytest.mark.parametrize("row_len", [1, 3])
def test_fixed_point_guard_matches_twin(row_len):
    from sigmadelta.kernels import fixed_point_guard
    from sigmadelta.kernels import numpy_twins as T

    rng = np.random.default_rng(row_len)
    x = rng.normal(size=30 * row_len) * 10.0
    rows, count = rng.permutation(30)[:12].astype(np.int64), np.array([12], np.int64)
    for big in (None, 1e18, np.inf, np.nan):
        if big is not None:
            x[rows[7] * row_len + row_len - 1] = big
        got = fixed_point_guard(x, rows, count, row_len, 16.0, 10**12)
        assert got == T.fixed_point_guard(x, rows, count, row_len, 16.0, 10**12)
        assert got == (-1 if big is None else rows[7] * row_len + row_len - 1)


def test_acc_bits_64_is_usable_and_exposed_in_convert():
    model, shape = make("linear")
    frames = smooth_stream(shape, t=4)
    narrow = sd.convert(model, shape, scale=1e6, weight_bits=12)
    with pytest.raises(sd.AccumulatorOverflowError, match=r"outside the signed 32-bit.*acc_bits=N"):
        sd.simulate(narrow, frames, progress=False)
    wide = sd.convert(model, shape, scale=1e6, weight_bits=12, acc_bits=64)
    np.testing.assert_array_equal(sd.simulate(wide, frames, progress=False).outputs,
                                  sd.reference(wide, frames, progress=False))
    small = quantize_weights(sd.convert(model, shape, scale=16.0), 8, acc_bits=64)
    np.testing.assert_array_equal(sd.simulate(small, frames, progress=False).outputs,
                                  sd.reference(small, frames, progress=False))
    with pytest.raises(ValueError, match="acc_bits"):
        sd.convert(model, shape, weight_bits=8, acc_bits=65)


# ---------------------------------------------------------------- one Simulator, two threads
def test_simulator_used_from_two_threads_is_refused():
    model, shape = make("conv")
    net = sd.convert(model, shape)
    frames = smooth_stream(shape, t=6)
    sim = sd.Simulator(net)
    started, release, result = threading.Event(), threading.Event(), {}

    def slow_stream():  # a live source that stalls after its first frame
        for i, f in enumerate(frames):
            if i == 1:
                started.set()
                release.wait(30)
            yield f

    th = threading.Thread(target=lambda: result.update(res=sim.run(slow_stream(), progress=False)))
    th.start()
    assert started.wait(30)
    with pytest.raises(sd.SimulatorBusyError, match="another thread"):
        sim.run(frames, progress=False)
    with pytest.raises(sd.SimulatorBusyError):
        sim.step(frames[0])
    with pytest.raises(sd.SimulatorBusyError):
        sim.reset()
    release.set()
    th.join(60)
    np.testing.assert_array_equal(result["res"].outputs, sd.simulate(net, frames, progress=False).outputs)

    # hammered from two threads: every call either runs (one after the other) or is refused
    long = smooth_stream(shape, t=200)
    one = sd.Simulator(net)
    runs = [one.run(long, progress=False).outputs for _ in range(10)]  # the same calls in sequence
    sim.reset()
    outcomes = []

    def hammer():
        for _ in range(5):
            try:
                outcomes.append(sim.run(long, progress=False).outputs)
            except sd.SimulatorBusyError:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert 1 <= len(outcomes) <= 10
    left = list(range(len(outcomes)))  # the k-th run to get the simulator continued the stream
    for out in outcomes:
        k = next(k for k in left if np.array_equal(out, runs[k]))
        left.remove(k)


# ---------------------------------------------------------------- in-place aliasing
class InplaceFunctional(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 8), nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x):
        y = self.a(x)
        z = F.relu(y, inplace=True)
        return self.b(z) + self.c(y)  # y is z here, as in PyTorch


class InplaceModule(InplaceFunctional):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.a(x)
        z = self.act(y)
        return self.b(z) + self.c(y)


class InplaceOnViewed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        y = self.conv(x)
        f = torch.flatten(y, 1)
        F.relu(y, inplace=True)  # also changes f, a view of y
        return self.fc(f)


@pytest.mark.parametrize("cls", [InplaceFunctional, InplaceModule])
def test_inplace_aliasing_follows_torch(cls):
    torch.manual_seed(0)
    model = cls().eval()
    frames = (np.random.default_rng(0).normal(size=(6, 6))).astype(np.float32)
    net = sd.convert(model, (6,), scale=4096.0)
    expected = ann(model, frames)
    assert _rel_err(sd.reference(net, frames, progress=False), expected) < 2e-3
    assert _rel_err(sd.simulate(net, frames, progress=False).outputs, expected) < 2e-3
    with pytest.raises(sd.UnsupportedLayerError, match="in-place.*view"):
        sd.convert(InplaceOnViewed().eval(), (1, 6, 6))


# ---------------------------------------------------------------- non-finite / corrupt parameters
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_parameters_are_refused_at_conversion(bad):
    model, shape = make("conv")
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = bad
    with pytest.raises(sd.NetworkError, match=r"layer '0'.*weight is not finite"):
        sd.convert(model, shape)
    bn = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).eval()
    with torch.no_grad():
        bn[1].running_var[1] = -1.0
    with pytest.raises(ValueError, match="running_var"):
        sd.convert(bn, (4,))


def _corrupt(path, how):
    with h5py.File(path, "r+") as f:
        layers = f["layers"]
        names = sorted(layers)
        dense = layers[names[-1]]  # the final Linear(144, 3)
        if how == "weight_shape":
            del dense["weight"]
            dense["weight"] = np.zeros((3, 100), np.float32)
        elif how == "nan_weight":
            w = dense["weight"][()]
            w[0, 0] = np.nan
            dense["weight"][...] = w
        elif how == "scale":
            dense.attrs["scale"] = -3.0
        elif how == "quantizer":
            dense.attrs["quantizer"] = "bogus"
        elif how == "output":
            f.attrs["output"] = 99
        elif how == "later_input":
            layers[names[1]].attrs["inputs"] = np.array([3], np.int64)
        elif how == "no_version":
            del f.attrs["format_version"]


@pytest.mark.parametrize("how,match", [
    ("weight_shape", r"weight has shape \(3, 100\), expected \(3, 144\)"),
    ("nan_weight", "weight is not finite"),
    ("scale", "scale must be finite and > 0"),
    ("quantizer", "quantizer 'bogus'"),
    ("output", "output index 99"),
    ("later_input", "not an earlier node"),
    ("no_version", "lacks format_version"),
])
def test_load_validates_the_network(tmp_path, how, match):
    model, shape = make("conv")
    sd.save(sd.convert(model, shape), tmp_path / "net.h5")
    _corrupt(tmp_path / "net.h5", how)
    with pytest.raises(FormatError, match=match):
        sd.load(tmp_path / "net.h5")


# ---------------------------------------------------------------- numeric overflow in a run
@pytest.mark.parametrize("dtype,big", [(np.float32, 3e38), (np.float64, 1e307)])
def test_numeric_overflow_stops_the_run_at_its_frame(tmp_path, dtype, big):
    model, shape = make("linear")
    net = sd.convert(model, shape)
    frames = smooth_stream(shape, t=6).astype(dtype)
    frames[3, 2] = big
    sim = sd.Simulator(net, dtype=dtype)
    with pytest.raises(sd.NumericOverflowError, match=r"at frame 3: .*not finite"):
        sim.run(frames, progress=False, record=str(tmp_path / "run.h5"))
    assert sim.frame_no == 3  # the three good frames are kept
    _, outputs, complete = sd.read_run(tmp_path / "run.h5")
    good = sd.simulate(net, frames[:3], dtype=dtype, progress=False).outputs
    np.testing.assert_array_equal(outputs, good.astype(outputs.dtype))
    assert not complete
    with pytest.raises(RuntimeError, match="reset"):
        sim.step(frames[0])
    sim.reset()
    np.testing.assert_array_equal(sim.run(frames[:3], progress=False).outputs, good)


def test_counter_overflow_is_reported():
    model, shape = make("linear")
    net = sd.convert(model, shape)
    frames = smooth_stream(shape, t=3).astype(np.float64)
    frames[1] *= 1e30
    with pytest.raises(sd.NumericOverflowError, match=r"frame 1: the additions counter of layer '0'"):
        sd.simulate(net, frames, progress=False)


# ---------------------------------------------------------------- zero-sized layers
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_zero_sized_layer_is_refused():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 0))
    with pytest.raises(sd.NetworkError, match=r"layer '2'.*zero-sized"):
        sd.convert(model, (16,))
