"""The conv path chooser: which path (event scatter, dense recompute of
:mod:`.recompute`, gather-GEMM-scatter of :mod:`.gathergemm`) a pixel conv layer runs
this frame, chosen before encoding from what is already known (this frame's touched
inputs, the last frame's events and pixels with events per touched input) and a cost
model per path (:func:`path_costs`; its table follows the machine: :mod:`.costtable`); the rule is in
:func:`choose_path`. Every path gives the same outputs and counters;
``pstate[FRAMES[path]]`` counts the frames each one ran."""

from collections import namedtuple

import numpy as np
from numba import njit

from .costtable import PATH_COSTS, PATH_COSTS_1X1, path_cost_table

__all__ = ["choose_path", "choose_dense", "path_costs", "gemm_may_win", "PATH_AUTO", "PATH_SCATTER",
           "PATH_DENSE", "PATH_GEMM", "PATH_NAMES", "PATH_STATE", "PATH_COSTS", "PATH_COSTS_1X1",
           "path_cost_table", "FIRST_EVENT_SHARE", "FRAMES", "VECTOR_BYTES", "scatter_pixel_cost",
           "FIT_PIXEL_SHARE", "SCATTER_PIXEL_NS", "by_channels", "FIXED_DENSE_SHARE"]

#: a layer's path mode (``pstate[PATH_STATE.mode]``); the path a frame runs is one of the last three
PATH_AUTO, PATH_SCATTER, PATH_DENSE, PATH_GEMM = range(4)
PATH_NAMES = {"auto": PATH_AUTO, "scatter": PATH_SCATTER, "dense": PATH_DENSE, "gemm": PATH_GEMM}
#: entries of a layer's path state ``pstate`` (int64): mode; the last frame's events, touched
#: inputs and pixels with events; frames run by the scatter, the dense path, gather-GEMM-scatter;
#: the inputs of the first frame (every one sent) until the frame after it has chosen
PATH_STATE = namedtuple("PathState", ["mode", "last_events", "last_touched", "last_pixels",
                                      "frames_scatter", "frames_dense", "frames_gemm",
                                      "first_inputs"])(*range(8))
MODE, LAST_EVENTS, LAST_TOUCHED, LAST_PIXELS = (PATH_STATE.mode, PATH_STATE.last_events,
                                                PATH_STATE.last_touched, PATH_STATE.last_pixels)
FIRST_INPUTS = PATH_STATE.first_inputs
FRAMES = (-1, PATH_STATE.frames_scatter, PATH_STATE.frames_dense, PATH_STATE.frames_gemm)

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


#: The tables price the scatter's synop at this share of ``C_in`` events per pixel with events
#: (``scripts/_micro.py`` ``fit_costs``): its cost per pixel spread over that many events.
FIT_PIXEL_SHARE = 0.5

#: ns per pixel with events of the scatter (3x3 and larger kernels), by state item size and
#: ``C_in`` (between the listed ones log-linear, outside them the nearest: :func:`by_channels`):
#: the encoder's group, the loop over kernel rows and the listing of the reached outputs, whatever
#: the pixel's events; it grows with ``C_in`` (a pixel's tap rows of ``C_out`` outputs are loaded
#: and stored once per pixel). ``b`` of the fit of ``scripts/_micro.py`` (``fit_pixel_costs``:
#: ``ns = a * synops + b * pixels`` over the forced-scatter rows of the ``--calibrate`` sweep) on
#: a 2-vCPU Intel Xeon VM (AVX-512), which moves by up to 1.6x from fit to fit: float32 135-219 /
#: 194-297 / 280-698 ns at C=16/32/64 over the fits of the built-in table and two at load 2-3,
#: float64 201-204 / 245-298 / 225-632. One price for every ``C_in`` (120 ns float32, 160
#: float64) underpriced the pixels at C=32-64: on the micro sweep (a quarter of the channels of
#: 80-100% of the pixels changing, 8-16 events a pixel) the chooser scattered at C=32 and 64 where
#: the dense path ran 1.1-1.2x as fast. C=16 and 32 keep that price: at the fitted 180-230 ns the
#: demo net's layer ``5`` (24 -> 48 channels, 17x21, carphone) recomputed on 41-45 of 60 frames
#: (33 before), where forcing its scatter ran the net 0.92x the time (thread CPU time, 6
#: alternating passes, load 2.7; its dense path costs more per multiply-add on that small map
#: than the table says), and the net 0.85-1.04x as fast. C=64 takes 300, between what the
#: sweep's two closest points allow with the table's other prices (above 150: a quarter of the
#: channels of every pixel, 15 events a pixel, recomputes, 1.1-1.2x as fast; below 445: 19% of
#: random neurons, 12 a pixel, scatters; at 500 it recomputed at 0.91x torch where the scatter
#: ran 1.12x, load 4). Float64 likewise 160 to C=32, 430 at C=64 (its fits: 225-632).
SCATTER_PIXEL_NS = {4: {16: 120.0, 32: 120.0, 64: 300.0}, 8: {16: 160.0, 32: 160.0, 64: 430.0}}


def by_channels(rows: dict, c_in: int):
    """The entry of ``rows`` (``{C_in: value or tuple}``) for ``c_in``: log-linear in ``C_in``
    between the listed ones, the nearest outside them (as :func:`path_costs` reads its table)."""
    keys = sorted(rows)
    c = min(max(c_in, keys[0]), keys[-1])
    hi = next(k for k in keys if k >= c)
    lo = max(k for k in keys if k <= c)
    t = 0.0 if hi == lo else np.log(c / lo) / np.log(hi / lo)
    if isinstance(rows[lo], tuple):
        return tuple((1 - t) * a + t * b for a, b in zip(rows[lo], rows[hi], strict=True))
    return (1 - t) * rows[lo] + t * rows[hi]


def scatter_pixel_cost(c_in: int, itemsize: int, per_event: float,
                       kernel_1x1: bool = False) -> tuple[float, float]:
    """The scatter's cost per pixel with events, apart from its cost per event:
    ``(ns per pixel, pixels per event that per_event already holds)`` for
    :func:`choose_path` (``px_cost, px_per_event``).

    The tables price an event at :data:`FIT_PIXEL_SHARE` ``* C_in`` events per pixel, so
    ``per_event`` (:func:`path_costs`) holds ``px_cost / (FIT_PIXEL_SHARE * C_in)`` of the
    pixel's cost; a frame of ``E`` events on ``P`` pixels then costs
    ``E * per_event + px_cost * (P - E * px_per_event)``. ``px_cost`` is
    :data:`SCATTER_PIXEL_NS` at ``c_in``, at most ``per_event / px_per_event`` (the whole price
    of an event at the fitted share). ``(0, 0)``, the per-event price alone, for 1x1 kernels
    (one row per pixel, their own table) and below the tables' first row (``C_in < 16``, not
    fitted)."""
    table = path_cost_table().tables["3x3"][8 if itemsize > 4 else 4]
    if kernel_1x1 or c_in < min(table) or not per_event > 0:
        return 0.0, 0.0
    share = 1.0 / (FIT_PIXEL_SHARE * c_in)
    return min(by_channels(SCATTER_PIXEL_NS[8 if itemsize > 4 else 4], c_in), per_event / share), share


#: the dense recompute's cost of a float32 3x3 conv of ``C -> C`` channels against the table's
#: ``C_in = C`` row, for the ``C`` whose direct conv runs with the shape fixed
#: (:func:`.directconv.fixed_channels`; the rows were fitted before): 16 -> 16, the layer's
#: dense frame 0.57 -> 0.44 ms at 64x64 (encoder 0.15 + conv 0.36 + listing 0.07 -> 0.14 +
#: 0.23 + 0.07); 32 -> 32, 1.59 -> 1.27 ms (encoder 0.32 + conv 1.15 -> 0.25 + 0.91, listing
#: 0.12); thread CPU time, 2-vCPU Intel Xeon VM (AVX-512), load 2.4-2.9. Without them the
#: chooser scattered at 8% random neurons (C=16) at 0.82x torch where the dense path ran 0.98x,
#: and at 19% of a quarter of the channels (C=32) at 0.80-0.84x where it ran 1.01-1.18x. A
#: refit of the rows (``--calibrate``) times the fixed shape itself: these are then 1.0.
FIXED_DENSE_SHARE = {16: 0.77, 32: 0.80}


def path_costs(c_in: int, itemsize: int, fan: float, dense_macs: float, gemm_macs: float,
               kernel_1x1: bool = False, c_out: int = 0, fixed: int = 0) -> tuple[float, float, float]:
    """A layer's cost model from the table in use (:func:`path_cost_table`: this CPU's; its
    ``"3x3"`` part, like :data:`PATH_COSTS`, or for ``kernel_1x1``, a float 1x1, stride-1,
    unpadded conv (:func:`sigmadelta.kernels.conv1x1_ok`), its ``"1x1"`` part):
    ``(ns per event of the scatter, ns per pixel with events of
    gather-GEMM-scatter, ns per frame of the dense recompute)`` for ``fan`` synops per event,
    ``dense_macs`` per frame and ``gemm_macs`` per pixel with events; ``c_out``, the layer's
    output channels per group (0: unknown), scales the fan up where a row of outputs is
    shorter than one SIMD vector (:data:`VECTOR_BYTES`). ``fixed``, the channels of a layer
    whose direct conv runs with the shape fixed (:func:`.directconv.fixed_channels`: float32
    3x3, ``C -> C`` of 16 or 32; 0: none), prices its dense frame at
    :data:`FIXED_DENSE_SHARE` of the table's.

    Below the table's first row (``C_in < 16``) gather-GEMM-scatter is left out (infinite
    cost): it was not fitted there, and its short GEMMs lose: on the ResNet block's stem
    (3 -> 32 channels, 64x64, float32) it took 28 of 30 frames at 1.9x the scatter's time."""
    table = path_cost_table().tables["1x1" if kernel_1x1 else "3x3"][8 if itemsize > 4 else 4]
    s, d, g = by_channels(table, c_in)
    lanes = VECTOR_BYTES // itemsize
    if 0 < c_out < lanes:  # a row of fewer outputs than one vector costs a whole vector
        fan *= lanes / c_out
    d *= FIXED_DENSE_SHARE.get(fixed, 1.0)
    return s * fan, (np.inf if c_in < min(table) else g * gemm_macs), d * dense_macs


@njit(cache=True, nogil=True)
def choose_path(pstate, n_touched, per_event, per_pixel, per_frame, prime, px_cost=0.0, px_per_event=0.0):
    """The path of this frame (and count the frame under it): ``PATH_SCATTER``,
    ``PATH_DENSE`` or ``PATH_GEMM``.

    A mode other than ``PATH_AUTO`` forces its path. ``PATH_AUTO``: dense on the first
    frame (every input is sent); else, with ``f = n_touched / last_touched`` (this frame's
    touched inputs over the last frame's), the path of least expected cost::

        scatter: f * (last_events * per_event + px_cost * (last_pixels - last_events * px_per_event))
        gemm:    f * last_pixels * per_pixel          dense: per_frame

    ``px_cost, px_per_event`` (:func:`scatter_pixel_cost`) price the scatter's pixels apart
    from its events: ``per_event`` holds the cost of ``px_per_event`` pixels per event (the
    fitted events per pixel); a frame whose events spread thinner over more pixels costs more.
    On the micro sweep (3x3, C=16, float32, 19% random neurons: 3.1 events per pixel against
    the 8 priced) the per-event price alone took the scatter at 0.5-0.6x torch where the dense
    path ran 0.9-1.0x.

    Where nothing was touched last frame the events are expected at :data:`FIRST_EVENT_SHARE`
    of the touched inputs; on the frame after the first (every input is sent on the first) at
    the first frame's share of inputs that spiked (``pstate[FIRST_INPUTS]``, its inputs); the
    choice is between the scatter (``share * n_touched * per_event``) and the dense path (how
    events spread over pixels is unknown: no gather-GEMM-scatter). On the micro sweep (random
    changes of 47.5% of the inputs, 95% of them events; 97% of the first frame's inputs spiked)
    the fixed share of 0.5 scattered that frame at twice the dense path's time.

    ``per_event`` holds the scatter's cost per pixel with events too, spread over that pixel's
    events at half of ``C_in`` (the fit, ``scripts/_micro.py`` ``fit_costs``: on the Intel Xeon
    VM, float32 3x3, 0.09-0.13 ns a synop plus 90-130 ns a pixel with events; the zoo layers
    run 0.4-0.6 events per touched input). Priced so, the ResNet block's
    ``features.1.body.1.0`` (32 -> 32, 64x64), which a one-median fit of the same sweep sent to
    the dense path and gather-GEMM-scatter on every frame at 1.10x the forced scatter's time,
    scatters on 27 of 30 frames (float32; the fallback table: 8) and the block runs 1.05x as
    fast as on the fallback table (float64 1.04x; thread CPU time, median of 8 alternating
    passes, load 1.8-2.2).
    """
    path = pstate[MODE]
    if path == PATH_AUTO:
        if prime:
            path = PATH_DENSE
        elif pstate[LAST_TOUCHED] == 0:
            share = FIRST_EVENT_SHARE
            if pstate[FIRST_INPUTS] > 0:  # the frame after the first: its share of inputs that spiked
                share = pstate[LAST_EVENTS] / pstate[FIRST_INPUTS]
            t_scatter = share * n_touched * per_event
            path = PATH_DENSE if per_frame < t_scatter else PATH_SCATTER
        else:
            f = n_touched / pstate[LAST_TOUCHED]
            best = f * (pstate[LAST_EVENTS] * per_event
                        + px_cost * (pstate[LAST_PIXELS] - pstate[LAST_EVENTS] * px_per_event))
            path = PATH_SCATTER
            t_gemm = f * pstate[LAST_PIXELS] * per_pixel
            if t_gemm < best:
                path, best = PATH_GEMM, t_gemm
            if per_frame < best:
                path = PATH_DENSE
    pstate[FRAMES[path]] += 1
    pstate[LAST_TOUCHED] = 0 if prime else n_touched
    pstate[FIRST_INPUTS] = n_touched if prime else 0
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
