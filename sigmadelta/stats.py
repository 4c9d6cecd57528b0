"""Accounting of a run: events, synaptic operations, additions, neuron updates, energy.

All counters are arrays of shape ``[T, n_weight_layers]`` (one row per frame,
one column per weight layer, named by ``layer_names``):

* ``events``: nonzero spikes into the layer;
* ``synops``: events x in-bounds fan-out (each one a synaptic operation);
* ``additions``: ``sum(|s|) x fan-out`` for herding (the additions of a receiver
  that adds the weight ``|s|`` times), equal to ``synops`` for threshold and lava;
* ``neuron_updates``: output neurons recomputed (they received >= 1 event);
* ``dense_macs``: what the ANN layer costs per frame, computed densely.

Energy uses the usual 45 nm figures (Horowitz 2014): an fp32 MAC costs 4.6 pJ,
an fp32 add 0.9 pJ, an int32 add 0.1 pJ. The dense ANN pays one fp32 MAC per MAC.
A herding synop (integer spike) is an fp32 add (or an int32 add with fixed-point
weights); a threshold or lava synop carries a graded value and pays an fp32 MAC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Stats", "ENERGY_PJ", "COUNTERS", "MEASURED"]

ENERGY_PJ = {"fp32_mac": 4.6, "fp32_add": 0.9, "int32_add": 0.1}
COUNTERS = ("events", "synops", "additions", "neuron_updates", "dense_macs")
MEASURED = COUNTERS[:4]  # counted per frame by the simulation (dense_macs is computed)


@dataclass
class Stats:
    """Per-frame, per-layer counters of a run (see module docstring)."""

    layer_names: list[str]
    events: np.ndarray
    synops: np.ndarray
    additions: np.ndarray
    neuron_updates: np.ndarray
    dense_macs: np.ndarray
    n_neurons: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantizers: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.synops.shape[0])

    def per_frame(self) -> dict[str, float]:
        """Mean per frame of every counter, summed over layers."""
        t = max(self.n_frames, 1)
        return {c: float(getattr(self, c).sum()) / t for c in COUNTERS}

    def reduction(self) -> np.ndarray:
        """Per layer: dense MACs / synops over the whole run (inf if no synop)."""
        s = self.synops.sum(0).astype(float)
        with np.errstate(divide="ignore"):
            return self.dense_macs.sum(0) / s

    def total_reduction(self) -> float:
        """Whole network: dense MACs / synops over the run."""
        s = float(self.synops.sum())
        return float(self.dense_macs.sum()) / s if s else float("inf")

    def update_share(self) -> np.ndarray:
        """Per layer: fraction of neuron-frames that were recomputed."""
        denom = np.maximum(self.n_neurons * max(self.n_frames, 1), 1)
        return self.neuron_updates.sum(0) / denom

    def energy(self) -> dict[str, float]:
        """Energy in joules over the run: dense ANN vs sigma-delta (fp32 and int32 adds)."""
        pj = ENERGY_PJ
        graded = ("threshold", "lava")  # graded spikes: every synop multiplies
        thr = np.array([q in graded for q in self.quantizers] or [False] * self.synops.shape[1])
        syn = self.synops.sum(0).astype(float)
        sd_fp32 = np.where(thr, pj["fp32_mac"], pj["fp32_add"]) * syn
        return {
            "dense_fp32_mac": float(self.dense_macs.sum()) * pj["fp32_mac"] * 1e-12,
            "sigma_delta_fp32": float(sd_fp32.sum()) * 1e-12,
            "sigma_delta_int32": float(syn.sum()) * pj["int32_add"] * 1e-12,
        }

    def summary(self) -> str:
        """A per-layer table with totals, reduction factors and the energy estimate."""
        red, share = self.reduction(), self.update_share()
        t = max(self.n_frames, 1)
        head = (f"{'layer':<18}{'events/fr':>12}{'synops/fr':>13}{'MACs/fr':>13}"
                f"{'reduction':>11}{'updated':>9}")
        lines = [f"{self.n_frames} frames, {len(self.layer_names)} weight layers", head,
                 "-" * len(head)]
        for j, name in enumerate(self.layer_names):
            lines.append(
                f"{name[:17]:<18}{self.events[:, j].sum() / t:>12.1f}"
                f"{self.synops[:, j].sum() / t:>13.4g}{self.dense_macs[:, j].sum() / t:>13.4g}"
                f"{red[j]:>10.1f}x{100 * share[j]:>8.1f}%"
            )
        pf = self.per_frame()
        tot_share = self.neuron_updates.sum() / max(self.n_neurons.sum() * t, 1)
        lines += ["-" * len(head),
                  f"{'total':<18}{pf['events']:>12.1f}{pf['synops']:>13.4g}{pf['dense_macs']:>13.4g}"
                  f"{self.total_reduction():>10.1f}x{100 * tot_share:>8.1f}%"]
        e = self.energy()
        lines.append(
            f"energy per frame: dense ANN {1e6 * e['dense_fp32_mac'] / t:.4g} uJ (fp32 MAC 4.6 pJ); "
            f"sigma-delta {1e6 * e['sigma_delta_fp32'] / t:.4g} uJ (fp32 add 0.9 pJ), "
            f"{1e6 * e['sigma_delta_int32'] / t:.4g} uJ (int32 add 0.1 pJ)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    @classmethod
    def from_rows(cls, layer_names, rows: np.ndarray, dense_macs: np.ndarray,
                  n_neurons: np.ndarray, quantizers: list[str]) -> Stats:
        """Build from ``rows[T, 4, L]`` = (events, synops, additions, neuron_updates)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4, len(layer_names))
        macs = np.broadcast_to(np.asarray(dense_macs, np.int64), rows[:, 0].shape).copy()
        return cls(list(layer_names), rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(),
                   rows[:, 3].copy(), macs, np.asarray(n_neurons, np.int64), list(quantizers))
