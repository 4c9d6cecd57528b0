"""``module:factory(...)``: the factory called with literal arguments, and clear errors otherwise."""

import sys
import textwrap

import numpy as np
import pytest
import torch.nn as nn

import sigmadelta as sd
from sigmadelta.cli import main
from sigmadelta.loaders import ModelLoadError, load_torch_model, parse_factory_spec

NETS = textwrap.dedent("""
    import torch.nn as nn

    CALLS = []

    def mlp(width=8, depth=1, act="relu", sizes=(4,)):
        CALLS.append(1)
        layers, n = [], sizes[0]
        for _ in range(depth):
            layers += [nn.Linear(n, width), nn.ReLU() if act == "relu" else nn.Tanh()]
            n = width
        return nn.Sequential(*layers, nn.Linear(n, 2))

    def fussy(width):
        if width < 1:
            raise ValueError("width must be >= 1")
        return nn.Linear(4, width)
""")


@pytest.fixture()
def nets(monkeypatch, tmp_path):
    """``loader_nets.py`` in a working directory of its own, imported fresh."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "loader_nets", raising=False)
    (tmp_path / "loader_nets.py").write_text(NETS)
    yield tmp_path
    sys.modules.pop("loader_nets", None)


@pytest.mark.parametrize("spec, parsed", [
    ("m:f", ("m", "f", (), {})),
    ("pkg.mod:f()", ("pkg.mod", "f", (), {})),
    ("m:f(16, depth=2)", ("m", "f", (16,), {"depth": 2})),
    ("m : f( width = 16 , act='tanh', sizes=(4, 5), d={'a': [1.5, None]}, b=True, n=-3 )",
     ("m", "f", (), {"width": 16, "act": "tanh", "sizes": (4, 5), "d": {"a": [1.5, None]},
                     "b": True, "n": -3})),
    ("m:f(path='a:b.pt')", ("m", "f", (), {"path": "a:b.pt"})),
])
def test_specs_parse_as_python_literals(spec, parsed):
    assert parse_factory_spec(spec) == parsed


@pytest.mark.parametrize("spec, match", [
    ("m:f(width=)", r"is not module:factory or module:factory\(name=value"),
    ("m:f(width=16", "is not module:factory"),
    ("m:", "is not module:factory"),
    (":f(width=1)", "is not module:factory"),
    ("m:f.g(1)", "is not module:factory"),
    ("m:f(1)(2)", "is not module:factory"),
    ("m:f[1]", "is not module:factory"),
    ("m:f(width=x)", r"argument width=x is not a literal"),
    ("m:f(__import__('os').getcwd())", r"argument __import__\('os'\).getcwd\(\) is not a literal"),
    ("m:f(width=2 ** 99)", "is not a literal"),
    ("m:f(*a)", r"\*args and \*\*kwargs are not accepted"),
    ("m:f(**{'width': 2})", r"\*args and \*\*kwargs are not accepted"),
])
def test_malformed_specs_are_named(spec, match):
    with pytest.raises(ModelLoadError, match=match):
        parse_factory_spec(spec)


def test_factory_gets_the_arguments(nets):
    model = load_torch_model("loader_nets:mlp(width=16, depth=2, act='tanh', sizes=(6,))")
    import loader_nets

    direct = loader_nets.mlp(width=16, depth=2, act="tanh", sizes=(6,))
    assert [type(m) for m in model] == [type(m) for m in direct]
    assert [tuple(p.shape) for p in model.parameters()] == [tuple(p.shape) for p in direct.parameters()]
    assert not model.training
    plain = load_torch_model("loader_nets:mlp")
    assert [tuple(p.shape) for p in plain.parameters()] == [(8, 4), (8,), (2, 8), (2,)]
    assert isinstance(load_torch_model("loader_nets:fussy(3)"), nn.Linear)


def test_arguments_the_factory_does_not_take_are_a_named_type_error(nets):
    with pytest.raises(ModelLoadError, match=r"TypeError: got an unexpected keyword argument "
                                             r"'widht'; the factory takes \(width=8, depth=1"):
        load_torch_model("loader_nets:mlp(widht=16)")
    import loader_nets  # imported by the loader, from the working directory

    with pytest.raises(ModelLoadError, match=r"TypeError: missing a required argument: 'width'"):
        load_torch_model("loader_nets:fussy()")
    with pytest.raises(ModelLoadError, match="TypeError: too many positional arguments"):
        load_torch_model("loader_nets:fussy(1, 2)")
    assert loader_nets.CALLS == []  # checked before the factory runs
    with pytest.raises(ModelLoadError, match=r"loader_nets:fussy\(0\) raised ValueError: width must be >= 1"):
        load_torch_model("loader_nets:fussy(0)")
    with pytest.raises(ModelLoadError, match=r"loader_nets:fussy\(width=\)' is not module:factory"):
        load_torch_model("loader_nets:fussy(width=)")


def test_cli_convert_with_factory_arguments(nets, capsys):
    assert main(["convert", "loader_nets:mlp(width=12, depth=2)", "--input-shape", "4",
                 "-o", str(nets / "n.h5")]) == 0
    net = sd.load(str(nets / "n.h5"))
    assert [w.weight.shape for w in net.weight_layers] == [(12, 4), (12, 12), (2, 12)]
    frames = np.random.default_rng(0).uniform(-1, 1, (5, 4)).astype(np.float32)
    np.testing.assert_array_equal(sd.simulate(net, frames).outputs, sd.reference(net, frames, progress=False))
    capsys.readouterr()
    assert main(["convert", "loader_nets:mlp(width=os.sep)", "--input-shape", "4",
                 "-o", str(nets / "m.h5")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "argument width=os.sep is not a literal" in err, err
