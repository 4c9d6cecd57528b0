"""The conv path chooser's price of the scatter's pixels (:func:`sigmadelta.kernels.scatter_pixel_cost`)."""

import numpy as np
import pytest

import sigmadelta.kernels as K
from sigmadelta.kernels.paths import FIT_PIXEL_SHARE, SCATTER_PIXEL_NS, by_channels


def _state(events, pixels, touched):
    ps = np.zeros(len(K.PATH_STATE), np.int64)
    S = K.PATH_STATE  # noqa: N806
    ps[S.last_events], ps[S.last_pixels], ps[S.last_touched] = events, pixels, touched
    return ps


def test_pixel_cost_prices_thin_events():
    """Events on more pixels than the fitted share cost more, on fewer less; at the share the
    price is the per-event one alone (the expected costs worked out by hand)."""
    per_event, px_cost, px_per_event = 10.0, 40.0, 0.25  # 4 events per pixel priced
    # 100 events on 25 pixels (the fitted share): 100 * 10 = 1000 either way
    for per_frame, path in ((999.0, K.PATH_DENSE), (1001.0, K.PATH_SCATTER)):
        ps = _state(100, 25, 100)
        assert K.choose_path(ps, 100, per_event, np.inf, per_frame, False, px_cost, px_per_event) == path
    # 100 events on 100 pixels: 1000 + 40 * (100 - 25) = 4000
    for per_frame, path in ((3999.0, K.PATH_DENSE), (4001.0, K.PATH_SCATTER)):
        ps = _state(100, 100, 100)
        assert K.choose_path(ps, 100, per_event, np.inf, per_frame, False, px_cost, px_per_event) == path
    # twice the touched inputs: twice the expected events and pixels, 8000
    ps = _state(100, 100, 100)
    assert K.choose_path(ps, 200, per_event, np.inf, 7999.0, False, px_cost, px_per_event) == K.PATH_DENSE
    # 100 events on 10 pixels: 1000 + 40 * (10 - 25) = 400
    ps = _state(100, 10, 100)
    assert K.choose_path(ps, 100, per_event, np.inf, 401.0, False, px_cost, px_per_event) == K.PATH_SCATTER
    # no pixel price: the per-event one alone (1000)
    ps = _state(100, 100, 100)
    assert K.choose_path(ps, 100, per_event, np.inf, 1001.0, False, 0.0, 0.0) == K.PATH_SCATTER


def test_scatter_pixel_cost_from_the_table():
    """The pixel price is the table's at ``C_in``, capped at a whole event's price at the
    fitted share; none for 1x1 kernels and below the table."""
    for itemsize in (4, 8):
        per_event = K.path_costs(32, itemsize, 9 * 32, 1, 1)[0]
        px, share = K.scatter_pixel_cost(32, itemsize, per_event)
        assert share == pytest.approx(1 / (FIT_PIXEL_SHARE * 32))
        assert px == pytest.approx(min(SCATTER_PIXEL_NS[itemsize][32], per_event / share))
        assert K.scatter_pixel_cost(32, itemsize, per_event, kernel_1x1=True) == (0.0, 0.0)
        assert K.scatter_pixel_cost(3, itemsize, per_event) == (0.0, 0.0)
    px, share = K.scatter_pixel_cost(16, 4, 1.0)  # a cheap event: the cap
    assert px * share == pytest.approx(1.0)


def test_pixel_price_by_channels():
    """The pixel price grows with ``C_in``: the table's entries at the listed ``C_in``,
    log-linear between them (at the geometric mean, the arithmetic mean of the two), the
    nearest outside; tuples entry by entry (as :func:`path_costs` reads its rows)."""
    rows = {16: 100.0, 64: 300.0}
    assert by_channels(rows, 16) == 100.0 and by_channels(rows, 64) == 300.0
    assert by_channels(rows, 32) == pytest.approx(200.0)
    assert by_channels(rows, 8) == 100.0 and by_channels(rows, 256) == 300.0
    assert by_channels({16: (1.0, 2.0), 64: (3.0, 6.0)}, 32) == pytest.approx((2.0, 4.0))
    for itemsize in (4, 8):
        ns = SCATTER_PIXEL_NS[itemsize]
        assert list(ns.values()) == sorted(ns.values())
        per_event = 1e6  # no cap
        assert [K.scatter_pixel_cost(c, itemsize, per_event)[0] for c in sorted(ns)] == list(ns.values())


def test_micro_layer_recomputes_where_events_are_thin():
    """A 3x3 16 -> 16 conv whose input changes at 19% of random neurons (about 3 events a
    pixel) recomputes densely after the first frames; whole-pixel changes of the same share
    (16 events a pixel) scatter or gather."""
    torch = pytest.importorskip("torch")
    import sigmadelta as sd

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 16, 3, padding=1).eval()
    net = sd.convert(conv, (16, 32, 32), scale=16.0)
    rng = np.random.default_rng(0)
    for pattern, dense in (("neuron", True), ("pixel", False)):
        x = [rng.random((16, 32, 32)).astype(np.float32)]
        for _ in range(5):
            f = x[-1].copy()
            if pattern == "neuron":
                m = rng.random(f.shape) < 0.19
            else:
                m = np.broadcast_to(rng.random((1, 32, 32)) < 0.19, f.shape)
            f[m] += rng.normal(0, 0.5, int(m.sum())).astype(np.float32)
            x.append(f)
        sim = sd.Simulator(net, dtype=np.float32)
        sim.run(np.stack(x), progress=False)
        paths = next(iter(sim.conv_paths.values()))
        assert (paths["dense"] >= 4) == dense, (pattern, paths)


def test_fit_pixel_costs_recovers_the_pixel_term(monkeypatch):
    """``scripts/_micro.py`` ``fit_pixel_costs``: ``b`` of ``ns = a * synops + b * pixels`` over
    the forced-scatter rows (exact here: a = 0.1 ns, b = 100 ns); nothing from two rows."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    from _micro import fit_pixel_costs

    macs = 1e8

    def row(ns, synops, pixels, path="scatter"):
        return {"channels": 16, "kernel": 3, "dtype": "float32", "path": path, "event_cpu_ms": ns / 1e6,
                "dense_gmacs_per_s": 50.0, "dense_ms": macs / 50e6, "op_reduction": macs / synops,
                "changed_pixels": pixels}

    rows = [row(0.1 * s + 100 * p, s, p) for s, p in ((1e6, 2000), (2e6, 2500), (3e6, 4000))]
    assert fit_pixel_costs([*rows, row(5e5, 1.0, 0.0, "dense")]) == {4: {16: pytest.approx(100.0)}}
    assert fit_pixel_costs(rows[:2]) == {}


def test_frame_after_the_first_expects_the_first_frames_share():
    """The frame after the first expects events at the share of the first frame's inputs that
    spiked (here 90 of 100: 0.9 * 50 touched * 2 ns = 90 ns against the dense 80: dense); a
    frame after one that touched nothing at :data:`FIRST_EVENT_SHARE` (0.5 * 50 * 2 = 50:
    the scatter)."""
    S = K.PATH_STATE  # noqa: N806
    ps = np.zeros(len(S), np.int64)
    assert K.choose_path(ps, 100, 2.0, np.inf, 80.0, True, 0.0, 0.0) == K.PATH_DENSE
    ps[S.last_events] = 90  # the first frame's events (the frame loop's counters)
    assert ps[S.first_inputs] == 100 and ps[S.last_touched] == 0
    assert K.choose_path(ps, 50, 2.0, np.inf, 80.0, False, 0.0, 0.0) == K.PATH_DENSE
    assert ps[S.first_inputs] == 0
    ps[S.last_touched], ps[S.last_events] = 0, 0  # a frame that touched nothing
    assert K.choose_path(ps, 50, 2.0, np.inf, 80.0, False, 0.0, 0.0) == K.PATH_SCATTER
    ps[S.first_inputs], ps[S.last_touched], ps[S.last_events] = 100, 0, 40  # first frame: 40%
    assert K.choose_path(ps, 50, 2.0, np.inf, 80.0, False, 0.0, 0.0) == K.PATH_SCATTER
