"""The sigmadelta command: convert -> simulate -> report, and its errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta.cli import main


def test_convert_simulate_report(tmp_path, capsys):
    model, shape = make("conv")
    torch.save(model, tmp_path / "model.pt")
    frames = smooth_stream(shape, t=6)
    np.save(tmp_path / "frames.npy", frames)
    net_path, run_path = str(tmp_path / "net.h5"), str(tmp_path / "run.h5")
    assert main(["convert", str(tmp_path / "model.pt"), "--input-shape", "2,8,8", "--scale", "16,40",
                 "-o", net_path]) == 0
    net = sd.load(net_path)
    assert [n.scale for n in net.weight_layers] == [16.0, 40.0]
    assert main(["simulate", net_path, str(tmp_path / "frames.npy"), "-o", run_path, "-q"]) == 0
    stats, outputs, complete = sd.read_run(run_path)
    assert complete
    np.testing.assert_allclose(outputs, sd.simulate(net, frames, progress=False).outputs, rtol=1e-6)
    assert main(["report", run_path, "--json"]) == 0
    out = capsys.readouterr().out
    assert "reduction" in out and '"reduction"' in out
    png = (tmp_path / "run.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_info_names_its_columns_and_the_weight_layers(tmp_path, capsys):
    model, shape = make("conv")  # Conv2d(2, 4, 3), ReLU, Flatten, Linear(144, 3) on (2, 8, 8)
    sd.save(sd.convert(model, shape), tmp_path / "net.h5")
    assert main(["info", str(tmp_path / "net.h5")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "kind", "name", "inputs", "shape", "quantizer"]
    assert lines[1].split() == ["0", "input", "input", "()", "(2,", "8,", "8)"]
    # as the summary tables name them; MACs: 4 x 6 x 6 outputs of 2 x 3 x 3 inputs, 144 x 3
    assert lines[-4:] == ["weight layers, as tables and reports name them:", "  1 conv1 3x3 2->4",
                          "  4 fc1 144->3", f"dense MACs per frame: {4 * 36 * 18 + 144 * 3}"]


def test_module_factory_spec_and_errors(tmp_path, capsys):
    assert main(["convert", "torch.nn:Identity", "--input-shape", "4", "-o",
                 str(tmp_path / "n.h5")]) == 2
    assert "no Linear or Conv2d" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    assert "no such" in capsys.readouterr().err
    assert main(["convert", "no_such_module_xyz:f", "--input-shape", "4"]) == 2
    assert "cannot import 'no_such_module_xyz'" in capsys.readouterr().err


@pytest.mark.slow
def test_console_help():
    """``python -m sigmadelta.cli`` in a fresh interpreter (slow: the SIGTERM test of
    test_recording.py runs it too, and test_cli_errors.py the installed console script)."""
    out = subprocess.run([sys.executable, "-m", "sigmadelta.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for word in ("convert", "simulate", "report"):
        assert word in out


def test_simulate_decodes_a_video_at_the_network_size(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for t in range(6):
            img = np.zeros((48, 64, 3), np.uint8)
            img[:, (8 * t) % 64:(8 * t) % 64 + 8] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(2 * 10 * 14, 3))
    net_path = str(tmp_path / "n.h5")
    sd.save(sd.convert(model, (1, 12, 16)), net_path)
    assert main(["simulate", net_path, str(path), "-o", str(tmp_path / "r.h5"), "-q"]) == 0
    stats, outputs, complete = sd.read_run(tmp_path / "r.h5")
    assert complete and outputs.shape == (6, 3)
