"""Pure Numba kernels over arrays: the innermost work of one frame.

Every kernel takes and mutates plain arrays (no Python objects) and has a slow,
obvious NumPy twin in :mod:`sigmadelta.kernels.numpy_twins` that the tests
compare it against. Conventions shared by all kernels:

* a node's value is a flat float array in the engine's channels-last layout
  (``[H, W, C]`` flattened for images, ``[N]`` for vectors);
* the neurons touched in a frame are listed in ``touched[:count[0]]``, without
  duplicates; ``stamp[i] == frame`` marks ``i`` as already listed this frame;
* events are ``(ev_idx[e], ev_val[e])`` for ``e < n_events``.

Conv layers with groups 1 and dilation 1 take the pixel-grouped path of
:mod:`sigmadelta.kernels.pixel` (encode per pixel, one contiguous multiply-add
per event and kernel row), or for one dense input channel the spike map of
:mod:`sigmadelta.kernels.spikemap`, chosen per frame by
:func:`sigmadelta.kernels.layer.conv_layer_step` (one call per layer and frame); a busy layer
recomputes its whole map instead (:mod:`sigmadelta.kernels.recompute`), or sends its
events through one matrix product (:mod:`sigmadelta.kernels.gathergemm`), chosen by
:func:`choose_path`; the per-event
:func:`conv_scatter` remains for the other convs and as the reference.
"""

from .conv1x1 import conv1x1_dense, conv1x1_ok
from .depthwise import DW_DENSE_ABOVE, depthwise_dense, depthwise_ok
from .directconv import direct_conv, direct_vectors, fixed_channels
from .elementwise import (
    ADD_FULL_ABOVE,
    CHEAP_MAX,
    FULL_PASS_ABOVE,
    activation_rows,
    activation_update,
    add_rows,
    add_update,
    concat_update,
    fixed_point_guard,
    fixed_point_update,
    flatten_update,
    mul_update,
    upsample_update,
)
from .gathergemm import conv_gemm_pixels, gemm_layout, pixel_rows
from .lavaf32 import dense_f32, fold_f32, lava_scatter_make, scatter_f32
from .lavaint import (
    FLOAT32_SUMS,
    INT32_SUMS,
    LAVA_MAP_MAX_C,
    fold_i32,
    lava_conv_step,
    lava_dense_step,
    lava_encode_map,
    lava_l1,
    lava_map,
    lava_map_make,
    lava_map_ok,
    max_abs,
    scatter_i32,
)
from .layer import conv_layer_dense, conv_layer_gemm, conv_layer_step
from .narrowconv import narrow_channels, narrow_conv
from .paths import (
    FIRST_EVENT_SHARE,
    PATH_AUTO,
    PATH_COSTS,
    PATH_COSTS_1X1,
    PATH_DENSE,
    PATH_GEMM,
    PATH_NAMES,
    PATH_SCATTER,
    PATH_STATE,
    choose_dense,
    choose_path,
    gemm_may_win,
    path_cost_table,
    path_costs,
    scatter_pixel_cost,
)
from .pixel import (
    Q_HERDING,
    Q_LAVA,
    Q_THRESHOLD,
    axis_fan,
    conv_scatter_pixels,
    encode_pixels,
    encode_rows,
    encode_scatter_1ch,
    list_rows,
    make_geom,
    run_layout,
)
from .pool import global_pool_rows, input_pool, pool_update
from .quantize import (
    herding_encode,
    herding_encode_units,
    lava_encode,
    lava_range_check,
    load_frame,
    mark_changed,
    mask_words,
    threshold_encode,
    touch_all,
)
from .recompute import dense_recompute, lava_dense_exact, padded_size
from .routing import gather_update, pixel_map_update
from .scatter import conv_scatter, convt_scatter, dense_scatter, expand_pixel_groups
from .smallconv import small_channels, small_conv
from .spikemap import encode_map_1ch, make_map, no_map, prefer_map
from .wholeconv import GEMM_BYTES, conv_gemm, gemm_rows

__all__ = [
    "ADD_FULL_ABOVE",
    "FULL_PASS_ABOVE",
    "CHEAP_MAX",
    "FLOAT32_SUMS",
    "INT32_SUMS",
    "LAVA_MAP_MAX_C",
    "fold_i32",
    "lava_conv_step",
    "lava_dense_step",
    "lava_encode_map",
    "lava_scatter_make",
    "dense_f32",
    "scatter_f32",
    "fold_f32",
    "lava_l1",
    "lava_map",
    "lava_map_make",
    "lava_map_ok",
    "max_abs",
    "scatter_i32",
    "DW_DENSE_ABOVE",
    "depthwise_dense",
    "conv1x1_dense",
    "conv1x1_ok",
    "depthwise_ok",
    "GEMM_BYTES",
    "PATH_AUTO",
    "PATH_COSTS",
    "PATH_COSTS_1X1",
    "FIRST_EVENT_SHARE",
    "PATH_DENSE",
    "PATH_GEMM",
    "PATH_NAMES",
    "PATH_SCATTER",
    "PATH_STATE",
    "Q_HERDING",
    "Q_LAVA",
    "Q_THRESHOLD",
    "choose_path",
    "gemm_may_win",
    "choose_dense",
    "path_costs",
    "scatter_pixel_cost",
    "path_cost_table",
    "conv_gemm",
    "direct_conv",
    "direct_vectors",
    "fixed_channels",
    "narrow_conv",
    "narrow_channels",
    "small_conv",
    "small_channels",
    "conv_gemm_pixels",
    "gemm_layout",
    "pixel_rows",
    "dense_recompute",
    "gemm_rows",
    "lava_dense_exact",
    "padded_size",
    "activation_rows",
    "activation_update",
    "add_update",
    "add_rows",
    "mul_update",
    "upsample_update",
    "axis_fan",
    "concat_update",
    "conv_layer_dense",
    "conv_layer_gemm",
    "conv_layer_step",
    "conv_scatter",
    "convt_scatter",
    "gather_update",
    "pixel_map_update",
    "conv_scatter_pixels",
    "dense_scatter",
    "encode_map_1ch",
    "encode_pixels",
    "encode_rows",
    "encode_scatter_1ch",
    "expand_pixel_groups",
    "fixed_point_guard",
    "fixed_point_update",
    "flatten_update",
    "herding_encode",
    "herding_encode_units",
    "list_rows",
    "load_frame",
    "make_geom",
    "make_map",
    "lava_encode",
    "lava_range_check",
    "mark_changed",
    "mask_words",
    "no_map",
    "pool_update",
    "input_pool",
    "global_pool_rows",
    "prefer_map",
    "run_layout",
    "threshold_encode",
    "touch_all",
]
