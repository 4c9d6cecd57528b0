"""HDF5 network files (round trip of every layer type, bad files) and run recordings."""

import h5py
import numpy as np
import pytest
from _zoo import ZOO, make, smooth_stream

import sigmadelta as sd
from sigmadelta.io import FORMAT_VERSION, FormatError


@pytest.mark.parametrize("name", sorted(ZOO))
def test_round_trip_gives_identical_outputs(tmp_path, name):
    model, shape = make(name)
    frames = smooth_stream(shape, t=5)
    n_layers = len(sd.convert(model, shape).weight_layers)
    per_layer = [float(8 + i) for i in range(n_layers)]
    for kw in (dict(scale=per_layer), dict(quantizer="threshold", threshold=0.01)):
        net = sd.convert(model, shape, **kw)
        sd.save(net, tmp_path / "net.h5")
        back = sd.load(tmp_path / "net.h5")
        assert back.summary() == net.summary()
        for a, b in zip(net.nodes, back.nodes, strict=True):
            assert type(a) is type(b)
            for key, val in a.params().items():
                np.testing.assert_array_equal(getattr(b, key), val)
        np.testing.assert_array_equal(sd.simulate(back, frames, progress=False).outputs,
                                      sd.simulate(net, frames, progress=False).outputs)


def test_load_refuses_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such"):
        sd.load(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FormatError, match="not an HDF5"):
        sd.load(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(FormatError, match="not a sigmadelta network"):
        sd.load(tmp_path / "other.h5")
    model, shape = make("linear")
    sd.save(sd.convert(model, shape), tmp_path / "new.h5")
    with h5py.File(tmp_path / "new.h5", "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(FormatError, match="newer"):
        sd.load(tmp_path / "new.h5")


def test_record_run(tmp_path):
    model, shape = make("residual")
    frames = smooth_stream(shape, t=10)
    net = sd.convert(model, shape)
    res = sd.simulate(net, frames, record=tmp_path / "run.h5", progress=False)
    stats, outputs, complete = sd.read_run(tmp_path / "run.h5")
    assert complete
    np.testing.assert_allclose(outputs, res.outputs, rtol=1e-6)
    for c in ("events", "synops", "additions", "neuron_updates", "dense_macs"):
        np.testing.assert_array_equal(getattr(stats, c), getattr(res.stats, c))
    assert stats.layer_names == res.stats.layer_names


def test_record_keeps_finished_chunks_when_the_run_stops(tmp_path):
    model, shape = make("conv")
    frames = smooth_stream(shape, t=9)
    net = sd.convert(model, shape)

    def stream():
        yield from frames[:7]
        raise KeyboardInterrupt  # the user stops the run half way

    sim = sd.Simulator(net)
    with pytest.raises(KeyboardInterrupt):
        sim.run(stream(), record=tmp_path / "run.h5", record_chunk=3, progress=False)
    stats, outputs, complete = sd.read_run(tmp_path / "run.h5")
    assert not complete
    assert len(outputs) == 7 and stats.synops.shape[0] == 7
    full = sd.simulate(net, frames, progress=False)
    np.testing.assert_allclose(outputs, full.outputs[:7], rtol=1e-6)
