"""One pixel-conv layer's frame in one call: encode, integrate, list the touched outputs.

The path is chosen per layer and frame:

* one input channel, events dense (:func:`sigmadelta.kernels.spikemap.prefer_map`):
  quantize into a spike map and gather per output pixel (:mod:`.spikemap`);
* one input channel otherwise: quantize and scatter per event in one pass
  (:func:`sigmadelta.kernels.pixel.encode_scatter_1ch`);
* more channels: group the events by pixel, then scatter per pixel and kernel row
  (:func:`~sigmadelta.kernels.pixel.encode_pixels` or ``encode_rows``, then
  ``conv_scatter_pixels``).

All paths give the same ``z``, encoder memory, counters and set of touched outputs.
A busy frame skips all of them: :func:`conv_layer_dense` recomputes the whole map
(:mod:`sigmadelta.kernels.recompute`; a 1x1, stride-1, unpadded float layer by a plain GEMM,
:mod:`sigmadelta.kernels.conv1x1`), or :func:`conv_layer_gemm` encodes as the scatter
does and integrates the events by gather-GEMM-scatter (:mod:`sigmadelta.kernels.gathergemm`);
both with the same encoder memory, counters and touched outputs, and ``z`` equal up to the
order of float additions (the dense path exactly for the ``"lava"`` quantizer, which adds the
conv of its integer messages; gather-GEMM-scatter never runs ``"lava"`` layers). Each returns
``(events, synops, additions, touched output neurons, pixels with events)``; the last feeds
the next frame's choice of path.
"""

from numba import njit

from .conv1x1 import conv1x1_dense, conv1x1_ok
from .gathergemm import conv_gemm_pixels
from .pixel import Q_LAVA, conv_scatter_pixels, encode_pixels, encode_rows, encode_scatter_1ch, list_rows
from .recompute import dense_recompute
from .spikemap import encode_map_1ch, prefer_map

__all__ = ["conv_layer_step", "conv_layer_dense", "conv_layer_gemm"]


@njit(cache=True, nogil=True)
def conv_layer_step(x, touched, count, rows, row_count, in_rows, memory, herding, param, gain,
                    w_run, z, geom, ev_ch, ev_val, px_list, px_start, vbuf, pg_list, pg_count,
                    pg_stamp, frame, prime, expand, out_touched, out_count, mgeom, smap, wtap,
                    lava_k=1.0, lava_shift=0):
    """One conv layer's frame (see the module docstring for the paths).

    ``pg_count`` is reset first; the reached output pixels are listed in ``pg_list``
    and, if ``expand``, their neurons in ``out_touched`` (:func:`list_rows`).
    ``mgeom, smap, wtap``: the spike-map state of :func:`sigmadelta.kernels.spikemap.make_map`
    (empty: never the map path). ``herding`` is the quantizer mode (``kernels.pixel.Q_*``;
    ``lava_k, lava_shift`` for ``Q_LAVA``).
    Returns ``(events, synops, additions, touched output neurons, pixels with events)``.
    """
    c_in = w_run.shape[1]
    pg_count[0] = 0
    if c_in == 1:  # one channel: a pixel is a neuron (its list is either list)
        pixels, n = (rows, row_count) if in_rows else (touched, count)
        if prefer_map(mgeom, pg_stamp.shape[0]):
            n_ev, synops, adds = encode_map_1ch(x, pixels, n, memory, herding, param, gain, wtap, z,
                                                geom, mgeom, smap, pg_list, pg_count, pg_stamp, frame,
                                                lava_k, lava_shift)
        else:
            n_ev, synops, adds = encode_scatter_1ch(x, pixels, n, memory, herding, param, gain, w_run,
                                                    z, geom, pg_list, pg_count, pg_stamp, frame,
                                                    lava_k, lava_shift)
        if mgeom.shape[0] > 0:
            mgeom[1] = n_ev  # the next frame's path
        n_px = n_ev
    else:
        if in_rows:
            n_px, n_ev = encode_rows(x, rows, row_count, c_in, memory, herding, param, ev_ch,
                                     ev_val, px_list, px_start, lava_k, lava_shift)
        else:
            n_px, n_ev = encode_pixels(x, touched, count, memory, herding, param, c_in, ev_ch,
                                       ev_val, px_list, px_start, lava_k, lava_shift)
        synops, adds = conv_scatter_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_run, z,
                                           geom, vbuf, pg_list, pg_count, pg_stamp, frame)
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, z.shape[0] // pg_stamp.shape[0], prime,
                      expand, out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px


@njit(cache=True, nogil=True)
def conv_layer_gemm(x, touched, count, rows, row_count, in_rows, memory, herding, param, gain,
                    w_g, z, geom, ev_ch, ev_val, px_list, px_start, gbuf, pg_list, pg_count,
                    pg_stamp, frame, prime, expand, out_touched, out_count, mgeom, lava_k=1.0,
                    lava_shift=0):
    """One conv layer's frame by gather-GEMM-scatter: encode by pixel as
    :func:`conv_layer_step` does (quantizer ``herding``: threshold or herding, never lava),
    integrate by :func:`sigmadelta.kernels.conv_gemm_pixels` (``w_g``, scratch ``gbuf``),
    list the outputs. Same results as :func:`conv_layer_step`. ``lava_k, lava_shift`` go
    unused to the encoder, as :func:`conv_layer_step` passes them: the compiled loop passes
    both the same values, so both share one compiled encoder (not one more with defaults).
    """
    c_in = w_g.shape[0]
    pg_count[0] = 0
    if in_rows:
        n_px, n_ev = encode_rows(x, rows, row_count, c_in, memory, herding, param, ev_ch, ev_val,
                                 px_list, px_start, lava_k, lava_shift)
    else:
        n_px, n_ev = encode_pixels(x, touched, count, memory, herding, param, c_in, ev_ch, ev_val,
                                   px_list, px_start, lava_k, lava_shift)
    synops, adds = conv_gemm_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_g, z, geom, gbuf,
                                    pg_list, pg_count, pg_stamp, frame)
    if mgeom.shape[0] > 0:
        mgeom[1] = n_ev  # the next frame's path
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, z.shape[0] // pg_stamp.shape[0], prime,
                      expand, out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px


@njit(cache=True, nogil=True, inline="always")
def conv_layer_dense(x, memory, herding, param, gain, c_in, w_cl, bias, use_bias, z, geom, mem_w, rowbuf,
                     pg_list, pg_count, pg_stamp, frame, prime, expand, out_touched, out_count,
                     mgeom, lava_k=1.0, lava_shift=0, direct=1, narrow=1):
    """One conv layer's frame by the dense recompute path (:func:`dense_recompute`).

    Lists the outputs as :func:`conv_layer_step` does and leaves the frame's events in the
    spike-map state (``mgeom``) for the next frame's choice. ``herding`` is the quantizer
    mode (``Q_LAVA``: ``z += conv(messages)``, see :mod:`.recompute`). Returns ``(events,
    synops, additions, touched output neurons, pixels with events)``. ``direct`` / ``narrow``
    None: the register-blocked / narrow conv left out of the compiled code (the GEMM instead).
    """
    pg_count[0] = 0
    if herding != Q_LAVA and conv1x1_ok(geom, w_cl, z):  # a plain GEMM, no im2col
        n_ev, synops, adds, n_px = conv1x1_dense(x, memory, herding, param, gain, c_in, w_cl, bias,
                                                 use_bias, z, geom, mem_w, rowbuf, pg_list, pg_count,
                                                 pg_stamp, frame)
    else:
        n_ev, synops, adds, n_px = dense_recompute(x, memory, herding, param, gain, c_in, w_cl, bias,
                                                   use_bias, z, geom, mem_w, rowbuf, pg_list, pg_count,
                                                   pg_stamp, frame, lava_k, lava_shift, direct, narrow)
    if mgeom.shape[0] > 0:
        mgeom[1] = n_ev  # the next frame's path
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, z.shape[0] // pg_stamp.shape[0], prime,
                      expand, out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px
