"""Energy per frame: arithmetic by operation and bit width, plus weight reads from memory.

Figures (45 nm, 0.9 V; M. Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014), in pJ:

* fp32: multiply 3.7, add 0.9, so a multiply-accumulate (MAC) 4.6;
* integer add: 0.03 at 8 bits, 0.1 at 32 bits; other widths linearly in the bit
  count through these two points (extrapolated below 8 bits);
* SRAM, one 64-bit read: 10 (8 KB), 20 (32 KB), 100 (1 MB);
* DRAM, one 64-bit read: 1.3-2.6 nJ; we charge 1.3 nJ (the low end, which favours
  the dense baseline).

What each operation costs::

    dense ANN MAC        E = fp32 MAC + read(32-bit weight)
    herding synop        E = add + read(weight)         add: fp32 add (float weights),
                                                        int add at the layer's weight bits
    threshold/lava synop E = fp32 MAC + read(weight)    (a graded spike is multiplied)
    read(b-bit weight)   E = b / 64 * E_64(memory)

``memory`` is the smallest SRAM of the table that holds all of the model's weights
(weight count x bits); when they exceed the on-chip budget (default 1 MB, the largest
SRAM figure) every weight read goes to DRAM. Neuron-state reads and writes, biases,
activations and control are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EnergyModel", "Energy", "HOROWITZ_45NM_PJ", "layer_energy", "FLOAT_BITS"]

#: Horowitz (ISSCC 2014) 45 nm figures, pJ.
HOROWITZ_45NM_PJ = {
    "fp32_mult": 3.7, "fp32_add": 0.9, "int8_add": 0.03, "int32_add": 0.1,
    "sram_64b_8KB": 10.0, "sram_64b_32KB": 20.0, "sram_64b_1MB": 100.0,
    "dram_64b_low": 1300.0, "dram_64b_high": 2600.0,
}
FLOAT_BITS = 32
_KB = 1024
_SRAMS = ((8 * _KB, "8 KB", HOROWITZ_45NM_PJ["sram_64b_8KB"]),
          (32 * _KB, "32 KB", HOROWITZ_45NM_PJ["sram_64b_32KB"]),
          (1024 * _KB, "1 MB", HOROWITZ_45NM_PJ["sram_64b_1MB"]))


@dataclass(frozen=True)
class EnergyModel:
    """The assumptions of the estimate (see the module docstring).

    Attributes
    ----------
    on_chip_bytes : weights beyond this many bytes are read from DRAM (default 1 MB)
    dram_pj_64b : energy of one 64-bit DRAM read (default 1300 pJ)
    """

    on_chip_bytes: int = 1024 * _KB
    dram_pj_64b: float = HOROWITZ_45NM_PJ["dram_64b_low"]

    @staticmethod
    def int_add_pj(bits: int) -> float:
        """Integer add of ``bits`` bits: linear through (8, 0.03) and (32, 0.1) pJ."""
        lo, hi = HOROWITZ_45NM_PJ["int8_add"], HOROWITZ_45NM_PJ["int32_add"]
        return lo + (hi - lo) * (bits - 8) / 24

    def memory(self, model_bits: int) -> tuple[str, float]:
        """Where a model of ``model_bits`` bits of weights lives, and pJ per 64-bit read."""
        nbytes = model_bits / 8
        if nbytes > self.on_chip_bytes:
            return "DRAM", self.dram_pj_64b
        for size, label, pj in _SRAMS:
            if nbytes <= size:
                return f"SRAM {label}", pj
        return "SRAM 1 MB", _SRAMS[-1][2]  # a budget above 1 MB: charged as the 1 MB array

    def describe(self) -> str:
        """The figures and assumptions in one paragraph, for printed output."""
        h = HOROWITZ_45NM_PJ
        return (f"energy model (Horowitz ISSCC 2014, 45 nm): fp32 MAC {h['fp32_mult']}+"
                f"{h['fp32_add']} pJ, fp32 add {h['fp32_add']} pJ, int add {h['int8_add']} pJ "
                f"(8 bit) to {h['int32_add']} pJ (32 bit), linear in bits; weight read = bits/64 "
                f"of a 64-bit read from the smallest SRAM holding the model (8 KB {h['sram_64b_8KB']:g}, "
                f"32 KB {h['sram_64b_32KB']:g}, 1 MB {h['sram_64b_1MB']:g} pJ), from DRAM "
                f"({self.dram_pj_64b / 1000:g} nJ) beyond an on-chip budget of "
                f"{self.on_chip_bytes / _KB:g} KB; neuron state, biases and control not counted")


@dataclass
class Energy:
    """An energy estimate, per layer and total, in joules (per frame or per run).

    Attributes
    ----------
    arithmetic, memory : per layer, J
    op : per layer, what one operation paid for arithmetic (e.g. ``"int6 add"``)
    op_pj, read_pj : per layer, pJ of one operation's arithmetic and weight read
    where : the memory the weights are read from (e.g. ``"SRAM 8 KB"``)
    model_bytes : the weights' size in bytes
    """

    arithmetic: np.ndarray
    memory: np.ndarray
    op: list[str] = field(default_factory=list)
    op_pj: np.ndarray = field(default_factory=lambda: np.zeros(0))
    read_pj: np.ndarray = field(default_factory=lambda: np.zeros(0))
    where: str = ""
    model_bytes: float = 0.0

    @property
    def arithmetic_total(self) -> float:
        return float(np.sum(self.arithmetic))

    @property
    def total(self) -> float:
        """Arithmetic plus memory, J."""
        return float(np.sum(self.arithmetic) + np.sum(self.memory))

    def to_dict(self) -> dict:
        return {"arithmetic_J": self.arithmetic_total, "total_J": self.total,
                "memory_J": float(np.sum(self.memory)), "op": list(self.op),
                "op_pJ": [float(v) for v in self.op_pj], "read_pJ": [float(v) for v in self.read_pj],
                "weights_in": self.where, "model_bytes": float(self.model_bytes)}


def _op(quantizer: str, bits: int, dense: bool, model: EnergyModel) -> tuple[str, float]:
    h = HOROWITZ_45NM_PJ
    if dense or quantizer in ("threshold", "lava"):
        return "fp32 MAC", h["fp32_mult"] + h["fp32_add"]
    if bits:
        return f"int{bits} add", model.int_add_pj(bits)
    return "fp32 add", h["fp32_add"]


def layer_energy(ops: Sequence[float], n_weights: Sequence[int], weight_bits: Sequence[int],
                 quantizers: Sequence[str], dense: bool = False,
                 model: EnergyModel | None = None) -> Energy:
    """Energy of ``ops[l]`` operations in each weight layer ``l``.

    Parameters
    ----------
    ops : per layer, synops (event network) or MACs (``dense=True``)
    n_weights : per layer, weights stored
    weight_bits : per layer, bits of a stored weight (``0``: float32)
    quantizers : per layer, ``"herding"`` or ``"threshold"``
    dense : the dense float ANN: every op is an fp32 MAC reading an fp32 weight
    model : the assumptions (default :class:`EnergyModel()`)

    Returns
    -------
    Energy
        ``arithmetic[l] = ops[l] * op_pJ[l]``, ``memory[l] = ops[l] * bits_l / 64 * E_64``.
    """
    model = model or EnergyModel()
    ops = np.asarray(ops, np.float64)
    bits = [FLOAT_BITS if dense or not b else int(b) for b in weight_bits]
    model_bits = int(sum(int(n) * b for n, b in zip(n_weights, bits, strict=True)))
    where, pj64 = model.memory(model_bits)
    kinds = [_op(q, int(b), dense, model) for q, b in zip(quantizers, weight_bits, strict=True)]
    op_pj = np.array([k[1] for k in kinds])
    read_pj = np.array([b / 64 * pj64 for b in bits])
    return Energy(ops * op_pj * 1e-12, ops * read_pj * 1e-12, [k[0] for k in kinds], op_pj,
                  read_pj, where, model_bits / 8)
