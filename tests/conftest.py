"""Hypothesis profiles: ``ci`` (default: few examples, derandomized, no deadline) for
``make test``, and ``long`` for a long search: ``pytest tests/test_properties.py
--hypothesis-profile=long`` (or ``HYPOTHESIS_PROFILE=long``).

Before the tests, one float64 network with float and fixed-point layers and every kind group
runs two frames on the loop with every path flag set (``program.PATH_FLAGS``): that compiles
(or loads) the frame loop with every path, which every other
float64 network then runs on (``loopcache.cached_flags``), so a cold cache compiles one loop
rather than one per set of layer kinds. ``tests/test_first_run.py`` runs the loops of
single kind sets.

PyTorch runs on one thread in the test process: the tests' tensors are tiny, and two OpenMP
threads on a busy 2-core machine spend their time spin-waiting for each other (a 20x24 conv of
8 -> 16 channels: 0.5-12 ms of CPU a call on two threads, 0.02-0.04 ms on one, load average
3.6; tests/test_parity.py, test_io.py, test_families.py and test_pointwise.py together: 19-20 s
of CPU on two threads, 6.5 s on one, load average 5-7).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=10, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW_OK, print_blob=True)
settings.register_profile("long", max_examples=1500, deadline=None, suppress_health_check=_SLOW_OK,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _torch_on_one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def _loop_with_every_path(_torch_on_one_thread):
    from _zoo import make, smooth_stream

    import sigmadelta as sd

    model, shape = make("routing")  # every kind group; one fixed-point layer, the rest float
    net = sd.convert(model, shape, weight_bits=[8, 0, 0, 0, 0])
    sim = sd.Simulator(net)
    p = sim._prog
    assert p.floats and p.fixed and all(p.kinds)
    sim._flags = tuple(1 for _ in p.flags)  # and every path: "lava" layers' check (load_netx)
    sim.run(smooth_stream(shape, t=2), progress=False)
