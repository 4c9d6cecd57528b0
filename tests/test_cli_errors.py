"""Every failure a user can cause on the command line ends in one clear line and a non-zero exit."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta.cli import main


def run(capsys, *argv):
    """Exit status and stderr of ``sigmadelta ARGV`` (in this process)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    return code, capsys.readouterr().err.strip()


def fails(capsys, *argv, match):
    code, err = run(capsys, *argv)
    assert code != 0, err
    assert len(err.splitlines()) == 1, err
    assert "error" in err and re.search(match, err), err
    return err


@pytest.fixture()
def files(tmp_path):
    """A converted network and frames for it, saved; the model saved whole and as a state dict."""
    model, shape = make("conv")
    torch.save(model, tmp_path / "model.pt")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    sd.save(sd.convert(model, shape), tmp_path / "net.h5")
    np.save(tmp_path / "frames.npy", smooth_stream(shape, t=5))
    return tmp_path


@pytest.fixture()
def readonly_dir(tmp_path):
    """A folder no file can be created in, even by root (then a read-only system folder)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    for cand in (d, Path("/sys")):
        try:
            (cand / "probe").touch()
        except OSError:
            yield cand
            break
        (cand / "probe").unlink()
    else:
        pytest.skip("no read-only folder found")
    d.chmod(0o755)


def test_read_only_output(capsys, files, readonly_dir):
    fails(capsys, "convert", files / "model.pt", "--input-shape", "2,8,8", "-o", readonly_dir / "n.h5",
          match=f"cannot save the network to {readonly_dir / 'n.h5'}")
    fails(capsys, "simulate", files / "net.h5", files / "frames.npy", "-q", "-o", readonly_dir / "r.h5",
          match=f"cannot write the recording {readonly_dir / 'r.h5'}")
    assert main(["simulate", str(files / "net.h5"), str(files / "frames.npy"), "-q", "-o",
                 str(files / "run.h5")]) == 0
    capsys.readouterr()
    fails(capsys, "report", files / "run.h5", "-o", readonly_dir / "r.png",
          match=re.escape(str(readonly_dir / "r.png")))


def test_frames_path_that_is_a_directory(capsys, files):
    fails(capsys, "simulate", files / "net.h5", files, "-q", "-o", files / "r.h5",
          match="is a directory")
    assert not (files / "r.h5").exists()


def test_accumulator_overflow_during_simulate(capsys, tmp_path):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(16, 4)), tmp_path / "m.pt")
    assert main(["convert", str(tmp_path / "m.pt"), "--input-shape", "16", "--scale", "1e6",
                 "--weight-bits", "8", "-o", str(tmp_path / "n.h5")]) == 0
    frames = np.random.default_rng(0).uniform(0.005, 0.01, (8, 16)).astype(np.float32)
    frames[5] *= 1000  # 1e6 * 10 * 127 * 16 inputs: past the 32-bit accumulator
    np.save(tmp_path / "f.npy", frames)
    capsys.readouterr()
    fails(capsys, "simulate", tmp_path / "n.h5", tmp_path / "f.npy", "-q", "-o", tmp_path / "r.h5",
          match=r"accumulator overflow at frame 5.*the 5 frames before it are kept in")
    stats, outputs, complete = sd.read_run(tmp_path / "r.h5")
    assert not complete and len(outputs) == 5


def test_random_bytes_model_file(capsys, tmp_path):
    (tmp_path / "junk.pt").write_bytes(np.random.default_rng(1).bytes(4096))
    fails(capsys, "convert", tmp_path / "junk.pt", "--input-shape", "4", "-o", tmp_path / "n.h5",
          match="junk.pt is not a readable torch file")
    fails(capsys, "convert", "torch.nn:Identity", "--weights", tmp_path / "junk.pt", "--input-shape",
          "4", "-o", tmp_path / "n.h5", match="junk.pt is not a readable torch file")


def test_weights_of_another_model(capsys, files, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other_nets_a.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        def wide():
            return nn.Sequential(nn.Conv2d(2, 7, 3), nn.ReLU(), nn.Flatten(), nn.Linear(7 * 36, 3))
        def renamed():
            return nn.Sequential(nn.Identity(), nn.Conv2d(2, 4, 3))
    """))
    fails(capsys, "convert", "other_nets_a:wide", "--weights", files / "weights.pt", "--input-shape",
          "2,8,8", match=r"weights.pt does not fit the model: .*0\.weight is \(\d+, 2, 3, 3\) in the "
                         r"file, \(7, 2, 3, 3\) in the model")
    fails(capsys, "convert", "other_nets_a:renamed", "--weights", files / "weights.pt",
          "--input-shape", "2,8,8", match=r"does not fit the model: missing 1\.weight, 1\.bias; "
                                          r"unexpected 0\.weight")
    fails(capsys, "convert", "other_nets_a:wide", "--weights", files / "model.pt", "--input-shape",
          "2,8,8", match="model.pt is not a readable torch file|not a state dict")


def test_factory_returning_a_non_module(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other_nets_b.py").write_text("def make():\n    return [1, 2]\n"
                                               "def broken():\n    raise RuntimeError('no GPU')\n")
    fails(capsys, "convert", "other_nets_b:make", "--input-shape", "4",
          match="other_nets_b:make gave a list, not a torch.nn.Module")
    fails(capsys, "convert", "other_nets_b:broken", "--input-shape", "4",
          match=r"other_nets_b:broken\(\) raised RuntimeError: no GPU")
    fails(capsys, "convert", "other_nets_b:missing", "--input-shape", "4",
          match="has no callable 'missing'")
    fails(capsys, "convert", "no_such_module_xyz:f", "--input-shape", "4",
          match="cannot import 'no_such_module_xyz'")


def test_demo_out_naming_an_existing_file(capsys, tmp_path):
    (tmp_path / "results").write_text("my notes")
    fails(capsys, "demo", "--out", tmp_path / "results", match="--out .*results is a file")
    assert (tmp_path / "results").read_text() == "my notes"


def test_convert_scale_zero_is_an_error(capsys, files):
    fails(capsys, "convert", files / "model.pt", "--input-shape", "2,8,8", "--scale", "0",
          "-o", files / "n0.h5", match=r"scale of layer '0' must be > 0, got 0\.0")
    fails(capsys, "convert", files / "model.pt", "--input-shape", "2,8,8", "--scale", "big",
          "-o", files / "n0.h5", match="--scale 'big'")
    assert not (files / "n0.h5").exists()


@pytest.mark.parametrize("argv", [["simulate", "net.h5", "frames.npy", "--limit", "0"],
                                  ["demo", "--frames", "0"], ["demo", "--frames", "-3"]])
def test_zero_frames_is_a_usage_error(capsys, argv):
    code, err = run(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and "must be at least 1" in err


def test_convert_onto_a_directory_leaves_no_stray_file(capsys, files):
    out = files / "outdir"
    out.mkdir()
    fails(capsys, "convert", files / "model.pt", "--input-shape", "2,8,8", "-o", out,
          match="is a directory")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        sd.save(sd.load(files / "net.h5"), out)
    assert sorted(os.listdir(files)) == ["frames.npy", "model.pt", "net.h5", "outdir", "weights.pt"]


def test_simulate_never_replaces_a_recording_silently(capsys, files, monkeypatch):
    monkeypatch.chdir(files)
    assert main(["simulate", "net.h5", "frames.npy", "-q"]) == 0  # the default: ./run.h5
    first = (files / "run.h5").read_bytes()
    for argv in (["simulate", "net.h5", "frames.npy", "-q"],
                 ["simulate", "net.h5", "frames.npy", "-q", "-o", "run.h5"]):
        fails(capsys, *argv, match="run.h5 already exists .*--force")
    assert (files / "run.h5").read_bytes() == first
    fails(capsys, "simulate", "net.h5", "frames.npy", "-q", "-o", "net.h5", "--force",
          match="-o net.h5 is an input of this command")
    fails(capsys, "report", "run.h5", "-o", "run.h5", match="-o run.h5 is an input")
    assert (files / "run.h5").read_bytes() == first and sd.load(files / "net.h5")
    np.save(files / "three.npy", np.load(files / "frames.npy")[:3])
    assert main(["simulate", "net.h5", "three.npy", "-q", "--force"]) == 0
    assert len(sd.read_run(files / "run.h5")[1]) == 3


def _console(tmp_path, *argv):
    """The installed ``sigmadelta`` console script, run from ``tmp_path``."""
    exe = Path(sys.executable).parent / "sigmadelta"
    if not exe.exists():
        pytest.skip("the sigmadelta console script is not installed")
    return subprocess.run([str(exe), *map(str, argv)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)


MYPKG = textwrap.dedent("""
    import torch
    import torch.nn as nn

    def make_net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2))
""")


@pytest.fixture()
def mypkg(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "nets.py").write_text(MYPKG)
    return tmp_path


def test_convert_module_factory_from_the_working_directory(mypkg):
    done = _console(mypkg, "convert", "mypkg.nets:make_net", "--input-shape", "1,16,16", "-o", "n.h5")
    assert done.returncode == 0, done.stderr
    net = sd.load(mypkg / "n.h5")
    assert net.layer_names == ["0", "2"] and net.output_shape == (2, 3, 3)


@pytest.mark.slow
def test_demo_model_factory_from_the_working_directory(mypkg, monkeypatch, capsys):
    """In this process, with the working directory taken off the import path as in a console
    script (the test above runs the real one)."""
    pytest.importorskip("sigmadelta.datasets").embedded_video_path("carphone")
    monkeypatch.chdir(mypkg)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(mypkg))])
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["demo", "--model", "mypkg.nets:make_net", "--frames", "3", "--out", "o", "-q"]) == 0
    assert "wrote o/activity.png" in capsys.readouterr().out
    stats, outputs, complete = sd.read_run(mypkg / "o" / "run.h5")
    assert complete and outputs.shape == (3, 2, 35, 43)
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]  # this test's package, not another's
