"""Accounting of a run: events, synaptic operations, additions, neuron updates, energy.

All counters are arrays of shape ``[T, n_weight_layers]`` (one row per frame,
one column per weight layer, named by ``layer_names``):

* ``events``: nonzero spikes into the layer;
* ``synops``: events x in-bounds fan-out (each one a synaptic operation);
* ``additions``: ``sum(|s|) x fan-out`` for herding (the additions of a receiver
  that adds the weight ``|s|`` times), equal to ``synops`` for threshold and lava;
* ``neuron_updates``: output neurons recomputed (they received >= 1 event);
* ``dense_macs``: what the ANN layer costs per frame, computed densely.

Energy (:mod:`sigmadelta.energy`, 45 nm figures of Horowitz 2014): the dense ANN
pays an fp32 MAC (4.6 pJ) per MAC; a herding synop (integer spike) an fp32 add
(0.9 pJ) with float weights or an integer add at the layer's weight bits with
fixed-point weights; a threshold or lava synop carries a graded value and pays an fp32 MAC.
With the weights' sizes known (``n_weights``, ``weight_bits``), every MAC and synop
also reads its weight from memory. ``fidelity`` (optional) holds the run's
:class:`~sigmadelta.fidelity.Fidelity` against its float ANN when one was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .energy import Energy, EnergyModel, layer_energy
from .fidelity import Fidelity

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
    n_weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    weight_bits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    layer_labels: list[str] = field(default_factory=list)
    fidelity: Fidelity | None = None

    def labels(self) -> list[str]:
        """What each weight layer is (``conv1 3x3/2 1->8``), else its name."""
        return list(self.layer_labels) if len(self.layer_labels) == len(self.layer_names) else \
            list(self.layer_names)

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

    def _quantizers(self) -> list[str]:
        return list(self.quantizers) or ["herding"] * self.synops.shape[1]

    def layer_energy(self, dense: bool = False, model: EnergyModel | None = None) -> Energy | None:
        """Energy of the whole run per layer (:func:`sigmadelta.energy.layer_energy`):
        the synops of the event network, or the MACs of its dense float ANN
        (``dense=True``). None when the weights' sizes were not recorded."""
        if len(self.n_weights) != len(self.layer_names):
            return None
        bits = self.weight_bits if len(self.weight_bits) else np.zeros(len(self.layer_names), int)
        ops = (self.dense_macs if dense else self.synops).sum(0)
        return layer_energy(ops, self.n_weights, bits, self._quantizers(), dense, model)

    def energy(self, model: EnergyModel | None = None) -> dict[str, float]:
        """Energy in joules over the run (see :mod:`sigmadelta.energy`).

        ``dense_fp32_mac`` / ``sigma_delta``: arithmetic only (dense ANN; event
        network, each layer's op); ``dense_with_memory`` / ``sigma_delta_with_memory``:
        plus a weight read per MAC / synop (only when the weights' sizes are known);
        ``sigma_delta_fp32`` / ``sigma_delta_int32``: every synop as an fp32 add
        (MAC for threshold layers) / as an int32 add.
        """
        pj = ENERGY_PJ
        graded = ("threshold", "lava")  # graded spikes: every synop multiplies
        thr = np.array([q in graded for q in self._quantizers()])
        syn = self.synops.sum(0).astype(float)
        sd_fp32 = np.where(thr, pj["fp32_mac"], pj["fp32_add"]) * syn
        out = {
            "dense_fp32_mac": float(self.dense_macs.sum()) * pj["fp32_mac"] * 1e-12,
            "sigma_delta_fp32": float(sd_fp32.sum()) * 1e-12,
            "sigma_delta_int32": float(syn.sum()) * pj["int32_add"] * 1e-12,
        }
        dense, event = self.layer_energy(True, model), self.layer_energy(False, model)
        if dense is not None and event is not None:
            out.update(dense_with_memory=dense.total, sigma_delta=event.arithmetic_total,
                       sigma_delta_with_memory=event.total)
        return out

    def _energy_lines(self, model: EnergyModel | None = None, describe: bool = True) -> list[str]:
        t = max(self.n_frames, 1)
        e = self.energy(model)
        dense, event = self.layer_energy(True, model), self.layer_energy(False, model)
        if event is None:
            return [f"energy per frame (arithmetic): dense ANN {1e6 * e['dense_fp32_mac'] / t:.4g} uJ "
                    f"(fp32 MAC 4.6 pJ); sigma-delta {1e6 * e['sigma_delta_fp32'] / t:.4g} uJ "
                    f"({' / '.join(sorted(set(_op_names(self._quantizers()))))}); "
                    f"weight sizes not recorded, memory not estimated"]
        ops = ", ".join(sorted(set(event.op)))
        return [
            f"energy per frame: dense fp32 ANN {1e6 * dense.arithmetic_total / t:.4g} uJ arithmetic, "
            f"{1e6 * dense.total / t:.4g} uJ with weight reads ({dense.where}); sigma-delta "
            f"{1e6 * event.arithmetic_total / t:.4g} uJ arithmetic ({ops}), "
            f"{1e6 * event.total / t:.4g} uJ with weight reads ({event.where}, "
            f"{event.model_bytes / 1024:.3g} KB of weights)",
        ] + ([(model or EnergyModel()).describe()] if describe else [])

    def summary(self, describe_energy: bool = True) -> str:
        """A per-layer table with totals, reduction factors and the energy estimate
        (with the energy model's figures unless ``describe_energy`` is false)."""
        red, share = self.reduction(), self.update_share()
        t = max(self.n_frames, 1)
        labels = self.labels()
        wid = max([18] + [len(s) + 2 for s in labels])  # full labels: never cut
        head = (f"{'layer':<{wid}}{'events/fr':>12}{'synops/fr':>13}{'MACs/fr':>13}"
                f"{'reduction':>11}{'updated':>9}")
        lines = [f"{self.n_frames} frames, {len(self.layer_names)} weight layers", head,
                 "-" * len(head)]
        for j, name in enumerate(labels):
            lines.append(
                f"{name:<{wid}}{self.events[:, j].sum() / t:>12.1f}"
                f"{self.synops[:, j].sum() / t:>13.4g}{self.dense_macs[:, j].sum() / t:>13.4g}"
                f"{red[j]:>10.1f}x{100 * share[j]:>8.1f}%"
            )
        pf = self.per_frame()
        tot_share = self.neuron_updates.sum() / max(self.n_neurons.sum() * t, 1)
        lines += ["-" * len(head),
                  f"{'total':<{wid}}{pf['events']:>12.1f}{pf['synops']:>13.4g}{pf['dense_macs']:>13.4g}"
                  f"{self.total_reduction():>10.1f}x{100 * tot_share:>8.1f}%"]
        lines += self._energy_lines(describe=describe_energy)
        if self.fidelity is not None:
            lines.append("fidelity vs the float ANN: " + self.fidelity.summary())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def report(self) -> dict:
        """The run as a JSON-ready dict; every field name says its unit and basis.

        ``*_per_frame``: mean per frame, summed over layers (``layers``: per layer);
        ``energy_J_total``: joules over the whole run, ``energy_J_per_frame`` the same
        divided by the frames; ``energy_pJ_per_op``: what each operation is charged.
        ``per_frame``, ``reduction`` and ``energy_J`` (a run total) are the same figures
        under their earlier names.
        """
        t, pf, e = max(self.n_frames, 1), self.per_frame(), self.energy()
        red, share = self.reduction(), self.update_share()
        layers = [{"name": n, "label": lab, "quantizer": q,
                   **{f"{c}_per_frame": float(getattr(self, c)[:, j].sum()) / t for c in COUNTERS},
                   "reduction_dense_macs_per_synop": _num(red[j]), "updated_share": float(share[j])}
                  for j, (n, lab, q) in enumerate(zip(self.layer_names, self.labels(),
                                                      self.quantizers or [""] * len(red), strict=True))]
        return {"frames": self.n_frames,
                **{f"{c}_per_frame": v for c, v in pf.items()},
                "reduction_dense_macs_per_synop": _num(self.total_reduction()),
                "energy_J_total": e, "energy_J_per_frame": {k: v / t for k, v in e.items()},
                "energy_pJ_per_op": {"dense_fp32_mac": ENERGY_PJ["fp32_mac"],
                                     "sigma_delta_fp32": "fp32_add per herding synop, fp32_mac per "
                                                         "threshold synop",
                                     "sigma_delta_int32": ENERGY_PJ["int32_add"], **ENERGY_PJ},
                "layers": layers,
                "per_frame": pf, "reduction": _num(self.total_reduction()), "energy_J": e}

    @classmethod
    def from_rows(cls, layer_names, rows: np.ndarray, dense_macs: np.ndarray,
                  n_neurons: np.ndarray, quantizers: list[str], n_weights=(), weight_bits=(),
                  layer_labels=()) -> Stats:
        """Build from ``rows[T, 4, L]`` = (events, synops, additions, neuron_updates)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4, len(layer_names))
        macs = np.broadcast_to(np.asarray(dense_macs, np.int64), rows[:, 0].shape).copy()
        return cls(list(layer_names), rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(),
                   rows[:, 3].copy(), macs, np.asarray(n_neurons, np.int64), list(quantizers),
                   np.asarray(n_weights, np.int64), np.asarray(weight_bits, np.int64),
                   list(layer_labels))


def _op_names(quantizers: list[str]) -> list[str]:
    return ["fp32 MAC 4.6 pJ" if q == "threshold" else "fp32 add 0.9 pJ" for q in quantizers]


def _num(x: float) -> float | None:
    """A float for JSON: None for an infinite ratio (no synop at all)."""
    return float(x) if np.isfinite(x) else None
