"""Make the Lava ground truth that tests/test_netx.py checks sigmadelta against.

Run with a Python that has lava-nc 0.10 and lava-dl 0.6 (Python 3.10; sigmadelta itself is not
needed)::

    python scripts/lava_ground_truth.py            # writes tests/data/lava/

For each small network it builds a lava-dl SDNN (``slayer.block.sigma_delta`` blocks), exports
it with lava-dl's own ``export_hdf5`` (the netx format), adds integer biases and per-layer
thresholds to the file, loads it with ``lava.lib.dl.netx.hdf5.Network`` and runs Lava's
fixed-point CPU simulation (``Loihi2SimCfg(select_tag="fixed_pt")``) with an
``io.source.RingBuffer`` feeding the input neurons and an ``io.sink.RingBuffer`` on the output
layer, as lava-dl's netx tests drive it. Two runs per network, of ``STEPS`` steps each: a held
input (one frame repeated) and a changing input (a new frame every step). Each network gives

* ``<name>.net``: the netx HDF5 file,
* ``<name>.npz``: ``held_frames`` / ``changing_frames`` ``[T, C, H, W]`` (or ``[T, C]``) int32 in
  PyTorch layout, and ``held_out`` / ``changing_out`` ``[T, *output_shape]``: what Lava's output
  sink held after each step.

``--time NETX --frames-npy F.npy`` prints one JSON line ``{"lava_ms_per_step": ...}``: Lava's
steady-state time per step on those frames ``[T, C, H, W]`` (after one start-up step, not
timed); ``scripts/benchmark.py --netx`` calls it.

``--wrap`` writes ``conv_wrap.npz`` (``frames``, ``out``): ``conv.net`` on the changing input
whose values jump 1500-fold at step ``WRAP_AT``; one step's sum of the first conv then leaves
the 24 bits Lava's Conv holds it in and wraps (sigmadelta stops there with a
``NumericOverflowError``).

``--file NAME=PATH`` runs an existing netx file instead (for example one written by
``sigmadelta.save_netx``), copied to ``<NAME>.net``, on the same kind of inputs.

Networks: ``conv`` (two convs, stride 2 / padding 1 and stride 1 / padding (1, 0) on a 9x11
input, then a dense readout), ``dense`` (dense, dense readout) and ``sdnn`` (conv, conv,
flatten, dense, dense).
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

STEPS = 40
WRAP_AT, WRAP_GAIN = 12, 1500  # --wrap: the step the input jumps at, and by how much
SEED = 0
NEURON = {"threshold": 0.05, "tau_grad": 0.5, "scale_grad": 1, "requires_grad": False,
          "shared_param": True, "activation": F.relu}


def build(name: str):
    """A lava-dl SDNN block list and its input shape (C, H, W) or (C,)."""
    from lava.lib.dl import slayer

    sd = slayer.block.sigma_delta
    kw = {"weight_scale": 2, "weight_norm": False}
    if name == "conv":
        blocks = [sd.Input(NEURON),
                  sd.Conv(NEURON, 2, 4, 3, padding=1, stride=2, **kw),
                  sd.Conv(NEURON, 4, 3, 3, padding=(1, 0), stride=1, **kw),
                  sd.Flatten(),
                  sd.Output(NEURON, 3 * 5 * 4, 4, **kw)]
        return blocks, (2, 9, 11)
    if name == "dense":
        blocks = [sd.Input(NEURON), sd.Dense(NEURON, 12, 16, **kw), sd.Output(NEURON, 16, 5, **kw)]
        return blocks, (12,)
    if name == "sdnn":
        blocks = [sd.Input(NEURON),
                  sd.Conv(NEURON, 2, 4, 3, padding=1, stride=2, **kw),
                  sd.Conv(NEURON, 4, 6, 3, padding=0, stride=1, **kw),
                  sd.Flatten(),
                  sd.Dense(NEURON, 6 * 2 * 3, 10, **kw),
                  sd.Output(NEURON, 10, 3, **kw)]
        return blocks, (2, 8, 10)
    raise ValueError(name)


def export(name: str, path: pathlib.Path, rng: np.random.Generator) -> None:
    """Export the network with lava-dl, then give hidden layers integer biases and thresholds."""
    blocks, shape = build(name)
    net = torch.nn.Sequential(*blocks)
    with torch.no_grad():
        net(torch.rand(1, *shape, 3))  # sets the blocks' shapes, as training would
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layer.create_group(f"{i}"))
    with h5py.File(path, "r+") as f:
        layers = f["layer"]
        for i in range(len(layers)):
            g = layers[f"{i}"]
            if "neuron" not in g:
                continue
            neuron = g["neuron"]
            if "sigma_output" in neuron:
                continue
            del neuron["vThMant"]
            neuron.create_dataset("vThMant", data=np.int64(rng.integers(1, 5)))
            kind = g["type"][0].decode()
            if kind in ("conv", "dense"):
                n_out = int(g["weight"].shape[0])
                g.create_dataset("bias", data=rng.integers(-2, 3, n_out).astype(np.float32))


def inputs(shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A held input (one frame repeated) and a changing one: a moving pattern plus noise.

    Integers 0..255: Lava's input has 6 fractional bits, so these are activations 0..4.
    """
    t = np.arange(STEPS)[:, None]
    if len(shape) == 1:
        base = np.arange(shape[0])[None]
        moving = 128 + 100 * np.sin(0.5 * base + 0.3 * t)
    else:
        c, h, w = shape
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        tt = np.arange(STEPS)[:, None, None, None]
        cc = np.arange(c)[None, :, None, None]
        moving = 128 + 100 * np.sin(0.6 * xx + 0.4 * yy + 0.35 * tt + cc)
    changing = np.clip(np.rint(moving + rng.normal(0, 8, moving.shape)), 0, 255).astype(np.int32)
    held = np.repeat(changing[STEPS // 2][None], STEPS, axis=0)
    return held, changing


def run_lava(path: pathlib.Path, frames: np.ndarray) -> tuple[np.ndarray, float]:
    """Lava's per-step output sink for ``frames [T, C, H, W]``; also seconds per step."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    net = netx.hdf5.Network(net_config=str(path))
    data = frames.transpose(tuple(range(frames.ndim - 1, 0, -1)) + (0,))  # (W, H, C, T)
    assert data.shape[:-1] == net.in_layer.shape, (data.shape, net.in_layer.shape)
    source = io.source.RingBuffer(data=data)
    sink = io.sink.RingBuffer(shape=net.out_layer.shape, buffer=len(frames))
    source.s_out.connect(net.in_layer.neuron.a_in)
    net.out_layer.out.connect(sink.a_in)
    t0 = time.perf_counter()
    net.run(condition=RunSteps(num_steps=len(frames)), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    out = sink.data.get()
    seconds = (time.perf_counter() - t0) / len(frames)
    net.stop()
    return np.moveaxis(out, -1, 0).astype(np.int64), seconds


def time_lava(path: str, frames: np.ndarray) -> float:
    """Seconds per step of Lava's fixed-point model after a first, untimed step."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    net = netx.hdf5.Network(net_config=str(path))
    data = frames.transpose(tuple(range(frames.ndim - 1, 0, -1)) + (0,)).astype(np.int32)
    source = io.source.RingBuffer(data=data)
    sink = io.sink.RingBuffer(shape=net.out_layer.shape, buffer=len(frames) + 1)
    source.s_out.connect(net.in_layer.neuron.a_in)
    net.out_layer.out.connect(sink.a_in)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    net.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
    t0 = time.perf_counter()
    net.run(condition=RunSteps(num_steps=len(frames)), run_cfg=cfg)
    seconds = (time.perf_counter() - t0) / len(frames)
    net.stop()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent.parent
                                         / "tests" / "data" / "lava"))
    ap.add_argument("--nets", nargs="*", default=["conv", "dense", "sdnn"])
    ap.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                    help="run an existing netx file (repeatable); --nets is then ignored")
    ap.add_argument("--time", metavar="NETX", help="time Lava on this file (see above)")
    ap.add_argument("--frames-npy", help="with --time: frames [T, C, H, W]")
    ap.add_argument("--wrap", action="store_true", help="write conv_wrap.npz only (see above)")
    args = ap.parse_args()
    if args.wrap:
        out = pathlib.Path(args.out)
        with h5py.File(out / "conv.net", "r") as f:
            shape = tuple(int(v) for v in f["layer/0/shape"][()])
        _, frames = inputs(shape, np.random.default_rng(SEED))
        frames[WRAP_AT:] *= WRAP_GAIN
        wrapped, _ = run_lava(out / "conv.net", frames)
        np.savez_compressed(out / "conv_wrap.npz", frames=frames, out=wrapped)
        return
    if args.time:
        import json

        ms = 1e3 * time_lava(args.time, np.load(args.frames_npy))
        print(json.dumps({"lava_ms_per_step": ms}))
        return
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [tuple(f.split("=", 1)) for f in args.file] or [(n, None) for n in args.nets]
    for name, src in jobs:
        rng = np.random.default_rng(SEED)
        torch.manual_seed(SEED)
        path = out / f"{name}.net"
        if src is None:
            export(name, path, rng)
            _, shape = build(name)
        else:
            shutil.copyfile(src, path)
            with h5py.File(path, "r") as f:
                shape = tuple(int(v) for v in f["layer/0/shape"][()])
        held, changing = inputs(shape, rng)
        held_out, s1 = run_lava(path, held)
        changing_out, s2 = run_lava(path, changing)
        np.savez_compressed(out / f"{name}.npz", held_frames=held, held_out=held_out,
                            changing_frames=changing, changing_out=changing_out)
        print(f"{name}: {STEPS} steps, {min(s1, s2) * 1e3:.1f} ms per step in Lava, "
              f"outputs up to {np.abs(changing_out).max()}")


if __name__ == "__main__":
    main()
