"""How faithfully a sigma-delta network follows its own float ANN, frame by frame.

Every measure compares the outputs ``y[T, ...]`` of a run with the outputs
``a[T, ...]`` of the float ANN it was converted from (or of another reference).
One frame's output is flattened into its *candidates* (the cells of a map, the
classes of a classifier); ``i*(a_t) = argmax_i a_t[i]`` is the reference's choice.

Definitions
-----------
relative error
    ``||y - a|| / ||a||`` over the whole run (Frobenius norms).
PSNR
    ``10 log10(peak^2 / mean((y - a)^2))`` with ``peak = max(a) - min(a)`` (the
    reference's dynamic range over the run), in dB.
regret of a frame
    ``r_t = max_i a_t[i] - a_t[argmax_i y_t[i]] >= 0``: how much lower the
    reference's own value is at the candidate the run chose than at its best one.
regret agreement
    The share of frames with ``r_t <= delta`` and, where the output has a presence
    notion (``presence_threshold`` given: "present" means ``max_i > threshold``),
    ``(max_i y_t > thr) == (max_i a_t > thr)``.
strict agreement
    The share of frames with ``argmax y_t == argmax a_t`` (and presence matching).
confident frames
    Frames whose reference top-two gap ``a_t[(1)] - a_t[(2)]`` exceeds ``delta``;
    strict agreement is reported on them too.
flip rate
    The share of consecutive frame pairs on which the reference's own argmax moves:
    ``mean_t [argmax a_t != argmax a_{t-1}]`` (``t >= 1``). It gives the scale of a
    decision's stability without any conversion.
delta (calibration)
    :func:`calibrate_delta`: how much the reference's maximum moves under one gray
    level of input noise, ``median_t |max_i f(x_t + n_t)[i] - max_i f(x_t)[i]|`` with
    ``n_t ~ N(0, sigma^2)`` per input element, ``sigma = 1/255`` (not clipped), over
    ``draws`` noise draws. A chosen candidate within ``delta`` of the maximum is as
    good as the ANN can tell apart from noise of one gray level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Fidelity",
    "fidelity",
    "relative_error",
    "psnr",
    "regret",
    "regret_agreement",
    "strict_agreement",
    "top_two_gap",
    "flip_rate",
    "calibrate_delta",
    "GRAY_LEVEL",
]

#: One gray level of an 8-bit frame scaled to [0, 1].
GRAY_LEVEL = 1.0 / 255.0


def _flat(x) -> np.ndarray:
    """``[T, ...]`` -> float64 ``[T, n_candidates]``."""
    x = np.asarray(x, np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"expected outputs of shape [T, ...] with T >= 1, got {x.shape}")
    return x.reshape(len(x), -1)


def _pair(y, a) -> tuple[np.ndarray, np.ndarray]:
    y, a = _flat(y), _flat(a)
    if y.shape != a.shape:
        raise ValueError(f"outputs {y.shape} and reference {a.shape} differ in shape")
    return y, a


def relative_error(y, a) -> float:
    """``||y - a|| / ||a||`` over all frames (``a`` the reference)."""
    y, a = _pair(y, a)
    return float(np.linalg.norm(y - a) / max(np.linalg.norm(a), 1e-300))


def psnr(y, a) -> float:
    """``10 log10(ptp(a)^2 / mean((y - a)^2))`` in dB (inf when equal)."""
    y, a = _pair(y, a)
    mse = float(np.mean((y - a) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(np.ptp(a) ** 2 / mse))


def regret(y, a) -> np.ndarray:
    """Per frame ``max_i a_t[i] - a_t[argmax_i y_t[i]]`` (``[T]``, >= 0)."""
    y, a = _pair(y, a)
    chosen = a[np.arange(len(a)), y.argmax(1)]
    return a.max(1) - chosen


def _presence_match(y: np.ndarray, a: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is None:
        return np.ones(len(a), bool)
    return (y.max(1) > threshold) == (a.max(1) > threshold)


def regret_agreement(y, a, delta: float, presence_threshold: float | None = None) -> float:
    """Share of frames whose regret is ``<= delta`` (and whose presence matches).

    Parameters
    ----------
    y, a : array_like ``[T, ...]``
        Outputs of the run and of the reference.
    delta : float
        Tolerance on the reference's own scale (e.g. from :func:`calibrate_delta`).
    presence_threshold : float, optional
        When given, a frame also needs ``(max y_t > thr) == (max a_t > thr)``
        (a face logit map: ``0``). ``None``: no presence notion (classifiers).
    """
    y, a = _pair(y, a)
    ok = (regret(y, a) <= delta) & _presence_match(y, a, presence_threshold)
    return float(np.mean(ok))


def _strict(y: np.ndarray, a: np.ndarray, threshold: float | None) -> np.ndarray:
    return (y.argmax(1) == a.argmax(1)) & _presence_match(y, a, threshold)


def strict_agreement(y, a, presence_threshold: float | None = None) -> float:
    """Share of frames with the same argmax (and matching presence)."""
    y, a = _pair(y, a)
    return float(np.mean(_strict(y, a, presence_threshold)))


def top_two_gap(a) -> np.ndarray:
    """Per frame: largest minus second largest candidate (``[T]``; inf with one candidate)."""
    a = _flat(a)
    if a.shape[1] < 2:
        return np.full(len(a), np.inf)
    top = np.partition(a, -2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def flip_rate(a) -> float:
    """Share of consecutive frames on which the argmax moves (0 for one frame)."""
    arg = _flat(a).argmax(1)
    return float(np.mean(arg[1:] != arg[:-1])) if len(arg) > 1 else 0.0


@dataclass
class Fidelity:
    """Fidelity of a run against a reference (see the module docstring).

    Attributes
    ----------
    relative_error, psnr_db : output error over the run
    delta : tolerance of the regret agreement (the reference's scale)
    regret_agreement : share of frames with regret <= delta (and presence matching)
    strict_agreement : share of frames with the same argmax (and presence)
    confident_agreement : strict agreement on confident frames (nan if there are none)
    confident_share : share of frames whose reference top-two gap exceeds ``delta``
    flip_rate : the reference's own frame-to-frame argmax flip rate
    median_gap : median top-two gap of the reference
    presence_threshold : the presence threshold used (None: no presence notion)
    frames : number of frames compared
    """

    relative_error: float
    psnr_db: float
    delta: float
    regret_agreement: float
    strict_agreement: float
    confident_agreement: float
    confident_share: float
    flip_rate: float
    median_gap: float
    presence_threshold: float | None
    frames: int

    def to_dict(self) -> dict:
        """Plain dict for JSON (floats; ``None`` for no presence threshold)."""
        return asdict(self)

    def summary(self) -> str:
        """One line: error, PSNR, regret agreement with delta, strict, flip rate."""
        return (f"relative error {self.relative_error:.4f}, PSNR {self.psnr_db:.1f} dB; "
                f"regret agreement {100 * self.regret_agreement:.1f}% (delta {self.delta:.3g}); "
                f"strict {100 * self.strict_agreement:.1f}% overall, "
                f"{100 * self.confident_agreement:.1f}% on confident frames "
                f"({100 * self.confident_share:.0f}% of frames); "
                f"reference argmax flip rate {100 * self.flip_rate:.1f}%")


def fidelity(y, a, delta: float, presence_threshold: float | None = None) -> Fidelity:
    """All measures of ``y`` against the reference ``a`` with tolerance ``delta``.

    Parameters
    ----------
    y, a : array_like ``[T, ...]``
        Outputs of the run and of the reference (e.g. the float ANN).
    delta : float
        Regret tolerance and confidence margin (e.g. from :func:`calibrate_delta`).
    presence_threshold : float, optional
        The output's presence notion (``max > threshold``), or None.
    """
    y, a = _pair(y, a)
    if not np.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be finite and >= 0, got {delta}")
    gap = top_two_gap(a)
    conf = gap > delta
    strict = _strict(y, a, presence_threshold)
    return Fidelity(
        relative_error=relative_error(y, a), psnr_db=psnr(y, a), delta=float(delta),
        regret_agreement=regret_agreement(y, a, delta, presence_threshold),
        strict_agreement=float(np.mean(strict)),
        confident_agreement=float(np.mean(strict[conf])) if conf.any() else float("nan"),
        confident_share=float(np.mean(conf)), flip_rate=flip_rate(a),
        median_gap=float(np.median(gap)), presence_threshold=presence_threshold, frames=len(a))


def _as_function(model) -> Callable[[np.ndarray], np.ndarray]:
    """A torch module becomes a no-grad float32 NumPy function; a callable stays."""
    if hasattr(model, "parameters") and hasattr(model, "eval"):
        import torch

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).double().numpy()

        return run
    if not callable(model):
        raise TypeError(f"expected a torch module or a callable, got {type(model).__name__}")
    return model


def calibrate_delta(model, frames, sigma: float = GRAY_LEVEL, draws: int = 4, seed: int = 0,
                    batch: int = 32) -> float:
    """The reference's own logit change under input noise of ``sigma`` (default one gray level).

    ``delta = median over frames and draws of |max_i f(x_t + n)[i] - max_i f(x_t)[i]|``,
    ``n ~ N(0, sigma^2)`` independently per input element (not clipped).

    Parameters
    ----------
    model : torch.nn.Module or callable
        The float reference ``f``: frames ``[B, *shape]`` -> outputs ``[B, ...]``.
    frames : array_like ``[T, *shape]``
    sigma : float
        Noise standard deviation on the input scale (``1/255``: one gray level of [0, 1]).
    draws : int
        Independent noise draws per frame.
    seed : int
        Seed of the noise generator.
    batch : int
        Frames per call of ``f``.
    """
    x = np.asarray(frames, np.float32)
    if x.ndim < 2 or len(x) == 0 or draws < 1 or not sigma > 0:
        raise ValueError(f"need frames [T, ...] with T >= 1, draws >= 1 and sigma > 0 "
                         f"(got shape {x.shape}, draws={draws}, sigma={sigma})")
    f = _as_function(model)
    rng = np.random.default_rng(seed)
    changes = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        base = _flat(f(xb)).max(1)
        for _ in range(draws):
            noisy = (xb + rng.normal(0.0, sigma, xb.shape)).astype(np.float32)
            changes.append(np.abs(_flat(f(noisy)).max(1) - base))
    return float(np.median(np.concatenate(changes)))
