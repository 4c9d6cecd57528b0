"""The conv path chooser: which path (event scatter, dense recompute of
:mod:`.recompute`, gather-GEMM-scatter of :mod:`.gathergemm`) a pixel conv layer runs
this frame, chosen before encoding from what is already known (this frame's touched
inputs, the last frame's events and pixels with events per touched input) and a cost
model per path (:data:`PATH_COSTS`, :func:`path_costs`); the rule is in
:func:`choose_path`. Every path gives the same outputs and counters;
``pstate[FRAMES[path]]`` counts the frames each one ran."""

from collections import namedtuple

import numpy as np
from numba import njit

__all__ = ["choose_path", "choose_dense", "path_costs", "gemm_may_win", "PATH_AUTO", "PATH_SCATTER",
           "PATH_DENSE", "PATH_GEMM", "PATH_NAMES", "PATH_STATE", "PATH_COSTS", "PATH_COSTS_1X1",
           "FIRST_EVENT_SHARE", "FRAMES", "VECTOR_BYTES"]

#: a layer's path mode (``pstate[PATH_STATE.mode]``); the path a frame runs is one of the last three
PATH_AUTO, PATH_SCATTER, PATH_DENSE, PATH_GEMM = range(4)
PATH_NAMES = {"auto": PATH_AUTO, "scatter": PATH_SCATTER, "dense": PATH_DENSE, "gemm": PATH_GEMM}
#: entries of a layer's path state ``pstate`` (int64): mode; the last frame's events, touched
#: inputs and pixels with events; frames run by the scatter, the dense path, gather-GEMM-scatter
PATH_STATE = namedtuple("PathState", ["mode", "last_events", "last_touched", "last_pixels",
                                      "frames_scatter", "frames_dense", "frames_gemm"])(*range(7))
MODE, LAST_EVENTS, LAST_TOUCHED, LAST_PIXELS = (PATH_STATE.mode, PATH_STATE.last_events,
                                                PATH_STATE.last_touched, PATH_STATE.last_pixels)
FRAMES = (-1, PATH_STATE.frames_scatter, PATH_STATE.frames_dense, PATH_STATE.frames_gemm)

#: The chooser's cost model: nanoseconds per unit of work of each path, by state dtype
#: (item size in bytes) and input channels ``C_in`` (between the listed ones: log-linear,
#: outside them: the nearest). Per entry ``(scatter, dense, gemm)``: scatter per synop,
#: dense recompute per dense multiply-add of the layer (encoding every input included),
#: gather-GEMM-scatter per multiply-add of its GEMM (``C_in * kh*kw * C_out`` per pixel with
#: events; its gather and scatter of the rows included). Only the ratios within a row matter.
#: Float32 (item size 4): fitted on a 2-vCPU AMD EPYC VM (Zen 4, AVX-512) on the busy points,
#: where the paths compete, by ``scripts/benchmark.py --micro --dtype float32 --activity
#: 0.2,0.35,0.5 --micro-pattern neuron,pixel,channels --conv-path scatter,dense,gemm --frames 8
#: --repeats 2 --fit-costs`` (forced paths, 3x3 convs C_in = C_out at 64x64; per path the
#: median over activities and patterns of the layer's thread CPU time / its units of work;
#: load average 2-2.4). The row before (a 2-vCPU Intel Xeon VM, activities 0.01-0.5: ``{16:
#: (0.2045, 0.0583, 0.0822), 32: (0.1056, 0.0271, 0.0394), 64: (0.0808, 0.0189, 0.0242)}``)
#: took the scatter at 0.106 ns per synop at C=32, a median raised by the fixed costs per frame
#: of the points at 1-5%; busy, on a quiet machine, it runs at 0.065-0.085 (0.072-0.077 in the
#: ResNet block), so that row sent the block's 32-channel convs to the GEMM paths at 1.3-1.4x
#: the scatter's time. On the zoo nets (30 frames of bikes, thread CPU time, alternating with
#: the row before in one process, 4 passes, load 2.8-3.5) this row ran the ResNet block 1.13x
#: (passes 0.99-1.20x) and VGG 1.08x (1.05-1.10x) as fast, MobileNetV2 and depthwise-separable
#: within 1%, ResNet-18 0.94-0.96x (its 2x2-8x8 maps, which the 64x64 fit does not see, move to
#: the scatter; it stays near 3x dense torch).
#: Float64 (item size 8) keeps the earlier fit (a 2-vCPU AMD EPYC, AVX2, load 9-10): the Intel
#: Xeon VM's float64 fit ``{16: (0.2994, 0.0803, 0.1219), 32: (0.191, 0.0516, 0.0625), 64:
#: (0.1489, 0.0416, 0.0401)}`` picked the same paths on the micro sweep but slower ones on the
#: zoo (gather-GEMM-scatter for 1x1 convs, whose dense path needs no im2col and costs less per
#: multiply-add than the 3x3 convs fitted): MobileNetV2 0.91-0.94x, the ResNet block and
#: depthwise-separable 0.93-1.00x. With :data:`PATH_COSTS_1X1` for the 1x1s it is still mixed
#: (thread CPU time against this row, one process, load 4-5: VGG 0.89x the time, the ResNet
#: block 1.10x, the other nets within 4%), so float64 keeps this row.
PATH_COSTS = {
    4: {16: (0.1602, 0.0517, 0.0735), 32: (0.0828, 0.0313, 0.042), 64: (0.0642, 0.0256, 0.0296)},
    8: {16: (2.163, 0.717, 0.8859), 32: (1.4354, 0.5674, 0.5712), 64: (1.2606, 0.4653, 0.5201)},
}

#: :data:`PATH_COSTS` of float 1x1, stride-1, unpadded convs (same units of work; strided 1x1s,
#: whose dense path is im2col's, keep :data:`PATH_COSTS`): the scatter's work per event is
#: ``C_out`` synops only, the dense path's a plain GEMM (:mod:`.conv1x1`), so the 3x3 fit
#: misjudged both (on MobileNetV2 and the depthwise-separable net 16-32-channel 1x1s scattered
#: on up to half the frames at 3-4x the dense path's time). Fitted as ``PATH_COSTS`` but on a
#: 1x1 layer (``--micro-kernel 1``, paths ``scatter,dense,gemm``, same command otherwise;
#: 2-vCPU Intel Xeon VM with AVX-512, load average 2-4).
PATH_COSTS_1X1 = {
    4: {16: (1.0427, 0.1457, 0.4126), 32: (0.4282, 0.0767, 0.1586), 64: (0.2294, 0.0459, 0.0712)},
    8: {16: (1.3184, 0.2258, 0.4972), 32: (0.6352, 0.1254, 0.2319), 64: (0.3828, 0.0801, 0.1058)},
}

#: :func:`choose_path`'s expected events per touched input where the last frame tells nothing
#: (the frame after the first, or after a frame that touched nothing). On the zoo nets (30
#: frames of bikes, herding scale 32) the layers' events per touched input ran 0.37-0.99,
#: most of them 0.4-0.6, and the frame after the first had the share of the frames after it.
FIRST_EVENT_SHARE = 0.5


#: The width, in bytes, of the SIMD vectors the scatter adds output rows with: a row of
#: ``C_out`` outputs of one tap costs at least one vector (16 float32, 8 float64 lanes). The
#: tables were fitted on convs with ``C_out = C_in >= 16``; a layer with fewer output channels
#: per group pays whole vectors for fewer synops, so its fan is taken at ``VECTOR_BYTES /
#: itemsize`` outputs a row. Measured on the demo net's last conv (48 -> 1 channels, 9 synops
#: per event, float32, carphone): its scatter took about 29 ns per event, where the per-synop
#: cost alone says 0.7 ns; taken at 16 outputs a row it recomputes densely, as it ran fastest
#: (the demo 0.421 -> 0.366 ms per frame, thread CPU time, 4 alternating passes, load 0.8).
VECTOR_BYTES = 64


def path_costs(c_in: int, itemsize: int, fan: float, dense_macs: float,
               gemm_macs: float, kernel_1x1: bool = False, c_out: int = 0) -> tuple[float, float, float]:
    """A layer's cost model (:data:`PATH_COSTS`; ``kernel_1x1``, a float 1x1, stride-1,
    unpadded conv (:func:`sigmadelta.kernels.conv1x1_ok`): :data:`PATH_COSTS_1X1`):
    ``(ns per event of the scatter, ns per pixel with events of
    gather-GEMM-scatter, ns per frame of the dense recompute)`` for ``fan`` synops per event,
    ``dense_macs`` per frame and ``gemm_macs`` per pixel with events; ``c_out``, the layer's
    output channels per group (0: unknown), scales the fan up where a row of outputs is
    shorter than one SIMD vector (:data:`VECTOR_BYTES`).

    Below the table's first row (``C_in < 16``) gather-GEMM-scatter is left out (infinite
    cost): it was not fitted there, and its short GEMMs lose: on the ResNet block's stem
    (3 -> 32 channels, 64x64, float32) it took 28 of 30 frames at 1.9x the scatter's time."""
    table = (PATH_COSTS_1X1 if kernel_1x1 else PATH_COSTS)[8 if itemsize > 4 else 4]
    keys = sorted(table)
    c = min(max(c_in, keys[0]), keys[-1])
    hi = next(k for k in keys if k >= c)
    lo = max(k for k in keys if k <= c)
    t = 0.0 if hi == lo else np.log(c / lo) / np.log(hi / lo)
    s, d, g = ((1 - t) * a + t * b for a, b in zip(table[lo], table[hi], strict=True))
    lanes = VECTOR_BYTES // itemsize
    if 0 < c_out < lanes:  # a row of fewer outputs than one vector costs a whole vector
        fan *= lanes / c_out
    return s * fan, (np.inf if c_in < keys[0] else g * gemm_macs), d * dense_macs


@njit(cache=True, nogil=True)
def choose_path(pstate, n_touched, per_event, per_pixel, per_frame, prime):
    """The path of this frame (and count the frame under it): ``PATH_SCATTER``,
    ``PATH_DENSE`` or ``PATH_GEMM``.

    A mode other than ``PATH_AUTO`` forces its path. ``PATH_AUTO``: dense on the first
    frame (every input is sent); else, with ``f = n_touched / last_touched`` (this frame's
    touched inputs over the last frame's), the path of least expected cost::

        scatter: f * last_events * per_event      gemm: f * last_pixels * per_pixel
        dense:   per_frame

    Where nothing was touched last frame, and on the frame after the first (every input
    spikes on the first, which says nothing about the events per touched input later), the
    events are expected at :data:`FIRST_EVENT_SHARE` of the touched inputs, and the choice is
    between the scatter (``FIRST_EVENT_SHARE * n_touched * per_event``) and the dense path
    (how events spread over pixels is unknown: no gather-GEMM-scatter).
    """
    path = pstate[MODE]
    if path == PATH_AUTO:
        if prime:
            path = PATH_DENSE
        elif pstate[LAST_TOUCHED] == 0:
            t_scatter = FIRST_EVENT_SHARE * n_touched * per_event
            path = PATH_DENSE if per_frame < t_scatter else PATH_SCATTER
        else:
            f = n_touched / pstate[LAST_TOUCHED]
            best = f * pstate[LAST_EVENTS] * per_event
            path = PATH_SCATTER
            t_gemm = f * pstate[LAST_PIXELS] * per_pixel
            if t_gemm < best:
                path, best = PATH_GEMM, t_gemm
            if per_frame < best:
                path = PATH_DENSE
    pstate[FRAMES[path]] += 1
    pstate[LAST_TOUCHED] = 0 if prime else n_touched
    return path


def gemm_may_win(c_in: int, per_event: float, per_pixel: float) -> bool:
    """Can :func:`choose_path` (mode ``PATH_AUTO``) ever pick gather-GEMM-scatter for a layer of
    ``c_in`` input channels with these costs? A pixel with events holds at most ``c_in`` of
    them (``last_events <= c_in * last_pixels``), so ``per_pixel >= c_in * per_event`` makes
    the GEMM's expected cost at least the scatter's on every frame: never (a margin of 1e-9
    covers the rounding of the chooser's products). Decides whether the frame loop compiles the
    path (:func:`sigmadelta.assemble.path_flags`)."""
    return bool(per_pixel < c_in * per_event * (1.0 + 1e-9))


@njit(cache=True, nogil=True)
def choose_dense(pstate, n_touched, n_in, dense_above, prime):
    """Should this frame run the dense path? (and count the frame under its path): the
    two-way choice of layers without gather-GEMM-scatter (depthwise convs).

    Mode ``PATH_SCATTER`` / ``PATH_DENSE`` force a path (``PATH_GEMM``: the scatter).
    ``PATH_AUTO``: dense on the first frame (every input is sent) and when ``expected =
    n_touched * last_events / last_touched`` reaches ``dense_above * n_in``.
    """
    mode = pstate[MODE]
    if mode == PATH_AUTO:
        if prime or pstate[LAST_TOUCHED] == 0:
            dense = prime
        else:
            dense = n_touched * pstate[LAST_EVENTS] >= dense_above * n_in * pstate[LAST_TOUCHED]
    else:
        dense = mode == PATH_DENSE
    pstate[FRAMES[PATH_DENSE if dense else PATH_SCATTER]] += 1
    pstate[LAST_TOUCHED] = n_touched
    return dense
