"""Hashes of outputs and counters, to show that a refactoring changes no result, bit for bit.

Runs the demo network (the shipped face detector at its operating point, 120 carphone
frames, float64 and float32; the dense reference; the demo's spike maps) and every model
of the test zoo (tests/_zoo.py) with herding, threshold, fixed-point and per-unit scales
(simulation in float64 and float32, the dense reference, the rounding net, the percentile
calibration, the scale objective), and writes one short SHA-256 per result to a JSON file.
Run it before and after a change and compare the files::

    python scripts/hash_runs.py before.json      # on the old commit
    python scripts/hash_runs.py after.json       # on the new one
    cmp before.json after.json
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _zoo import ZOO, make, smooth_stream  # noqa: E402
from sigmadelta.datasets import open_source  # noqa: E402

import sigmadelta as sd  # noqa: E402
from sigmadelta import demo  # noqa: E402
from sigmadelta.scales import RoundingNet, scale_objective  # noqa: E402

__all__ = ["main", "demo_hashes", "zoo_hashes"]


def h(*arrays) -> str:
    """Short SHA-256 of arrays: dtype, shape and bytes of each."""
    d = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        d.update(str(a.dtype).encode() + str(a.shape).encode())
        d.update(a.tobytes())
    return d.hexdigest()[:16]


def run_hash(res) -> str:
    """Outputs and the four counters of a run."""
    s = res.stats
    return h(res.outputs, s.events, s.synops, s.additions, s.neuron_updates)


def demo_hashes() -> dict[str, str]:
    """The shipped face detector at its operating point on 120 carphone frames."""
    model, _, scales = demo._face_model()
    x = np.stack(list(open_source("carphone", size=(144, 176), gray=True, limit=120)))
    x = x.astype(np.float32)
    net = sd.convert(model, x.shape[1:], scale=scales)
    out = {f"demo/sim/{np.dtype(dt).name}": run_hash(sd.simulate(net, x, progress=False, dtype=dt))
           for dt in (np.float64, np.float32)}
    if hasattr(demo, "_spike_maps"):
        out["demo/spike_maps"] = h(*demo._spike_maps(net, x[:40], [1, 20, 39]).values())
    out["demo/reference"] = h(sd.reference(net, x[:30], progress=False))
    return out


def _variants(model, shape) -> dict:
    """The zoo model converted four ways: herding, threshold, fixed point, per-unit scales."""
    herding = sd.convert(model, shape, scale=8.0)
    rng = np.random.default_rng(0)
    units = {layer.name: rng.uniform(4, 16, herding.nodes[layer.inputs[0]].shape)
             for layer in herding.weight_layers}
    return {"herding": herding,
            "threshold": sd.convert(model, shape, quantizer="threshold", threshold=0.05),
            "fixed": sd.convert(model, shape, scale=16.0, weight_bits=8),
            "units": sd.convert(model, shape, scale=units)}


def zoo_hashes(name: str) -> dict[str, str]:
    """One zoo model: simulation, reference, rounding net, calibration, scale objective."""
    model, shape = make(name)
    frames = smooth_stream(shape, t=10)
    out = {}
    variants = _variants(model, shape)
    for v, net in variants.items():
        for dt in (np.float64, np.float32):
            out[f"{name}/{v}/sim/{np.dtype(dt).name}"] = run_hash(
                sd.simulate(net, frames, progress=False, dtype=dt))
        out[f"{name}/{v}/reference"] = h(sd.reference(net, frames, progress=False))
    net = variants["herding"]
    out[f"{name}/calibrate"] = h(np.array(list(sd.calibrate_percentile(net, frames).values())))
    for q in ("herding", "threshold"):
        init = [0.1 if q == "threshold" else 8.0] * len(net.weight_layers)
        rn = RoundingNet(net, q, "layer", init, dtype=torch.float64)
        y, c = rn(torch.as_tensor(frames, dtype=torch.float64))
        out[f"{name}/roundingnet/{q}"] = h(y.detach().numpy(), c.detach().numpy())
    o = scale_objective(net, frames, None, 8.0, 0.1, loss="l2")
    out[f"{name}/objective"] = h(np.array([o["objective"], o["error"], o["cost"]]))
    return out


def main(argv: list[str] | None = None) -> dict[str, str]:
    """Write the hashes to the JSON file named by the first argument."""
    path = (sys.argv[1:] if argv is None else argv)[0]
    out = demo_hashes()
    for name in sorted(ZOO):
        out.update(zoo_hashes(name))
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    combined = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:16]
    print(f"{len(out)} hashes; combined {combined}")
    return out


if __name__ == "__main__":
    main()
