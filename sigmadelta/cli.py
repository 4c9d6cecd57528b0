"""The ``sigmadelta`` command: convert, simulate, report, info (and demo).

Each subcommand is a thin layer over the library API; run
``sigmadelta SUBCOMMAND --help`` for its options. Every failure a user can cause
(a bad file, a bad option, a network that overflows) ends in one line on stderr,
``sigmadelta COMMAND: error: ...``, and exit status 2 (1 for an unexpected error,
whose traceback ``sigmadelta --traceback COMMAND ...`` shows; 130 when stopped by
Ctrl-C or SIGTERM, after the recording is closed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import warnings

from . import stop
from .cli_many import add_many_arguments, cmd_report_runs, cmd_simulate_many, is_many
from .loaders import load_torch_model

__all__ = ["main", "build_parser", "load_torch_model", "CLIError", "positive_int"]

EPILOG = """examples:
  sigmadelta convert mypkg.nets:make_net --input-shape 1,144,176 --scale 32 -o net.h5
  sigmadelta convert model.pt --input-shape 784 --quantizer threshold --threshold 0.02 -o net.h5
  sigmadelta simulate net.h5 frames.npy -o run.h5
  sigmadelta simulate net.h5 carphone bikes clips/*.mp4 -o runs/ --workers 4
  sigmadelta report run.h5 -o report.png
  sigmadelta report runs/
  sigmadelta demo
"""


class CLIError(Exception):
    """A user error the command reports in one line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, pointing at ``--help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v)
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (use e.g. 1,144,176)")
    return shape


def _per_layer(text: str | None, option: str):
    """'32' -> 32.0; '8,16,32' -> list; 'conv1=8,fc=16' -> dict."""
    if text is None:
        return None
    parts = [p for p in text.split(",") if p]
    try:
        if parts and all("=" in p for p in parts):
            return {k: float(v) for k, v in (p.split("=", 1) for p in parts)}
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if not vals:
        raise CLIError(f"{option} {text!r}: give one number, one per weight layer (8,16,32) or "
                       f"name=value pairs")
    return vals[0] if len(vals) == 1 else vals


def _check_output(path: str, option: str, force: bool = True, inputs: tuple[str, ...] = ()) -> None:
    """Refuse an output path that is a directory, lies in no directory, is one of the
    command's ``inputs``, or (without ``force``) exists; before any work is done."""
    if os.path.exists(path) and any(os.path.exists(p) and os.path.samefile(path, p) for p in inputs):
        raise CLIError(f"{option} {path} is an input of this command; write to another file")
    if os.path.isdir(path):
        raise CLIError(f"{option} {path} is a directory; name a file (e.g. {os.path.join(path, 'out')})")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"{option} {path}: no such directory {parent}")
    if not force and os.path.exists(path):
        raise CLIError(f"{path} already exists (an earlier run?); give another {option} or "
                       f"--force to replace it")


def cmd_convert(args) -> None:
    import sigmadelta as sd

    _check_output(args.output, "-o", inputs=tuple(p for p in (args.model, args.weights) if p))
    scale = _per_layer(args.scale, "--scale")
    model = load_torch_model(args.model, args.weights)
    net = sd.convert(model, args.input_shape, scale=32.0 if scale is None else scale,
                     quantizer=args.quantizer, threshold=_per_layer(args.threshold, "--threshold"),
                     weight_bits=args.weight_bits)
    sd.save(net, args.output)
    print(_describe(net))
    print(f"wrote {args.output}")


def _describe(net) -> str:
    """The network's nodes under a header, then its weight layers as tables and reports name
    them (``conv1 3x3/2 1->8``: a bare ``nn.Sequential`` index is no name to read)."""
    head = f"{'#':>3s} {'kind':10s} {'name':24s} {'inputs':10s} {'shape':16s} quantizer"
    rows = [head, *(r.rstrip() for r in net.summary().splitlines())]
    nodes = [i for i, n in enumerate(net.nodes) if any(n is w for w in net.weight_layers)]
    rows.append("weight layers, as tables and reports name them:")
    rows += [f"{i:3d} {label}" for i, label in zip(nodes, net.layer_labels, strict=True)]
    return "\n".join(rows)


def _frames(spec: str, limit: int | None, shape: tuple[int, ...]):
    """Open frames; a video is decoded at the network's size (gray for one channel)."""
    from sigmadelta.datasets import VideoSource, open_source

    if os.path.isdir(spec):
        raise CLIError(f"frames {spec} is a directory; give a .npy, .h5 or video file, or an "
                       f"embedded name such as carphone")
    kw = {"limit": limit} if limit else {}
    src = open_source(spec, **kw)
    if isinstance(src, VideoSource) and len(shape) == 3 and src.frame_shape != tuple(shape):
        src = open_source(spec, size=shape[1:], gray=shape[0] == 1, **kw)
    return src


def _kept(path: str) -> str:
    from sigmadelta.io import read_run_info

    try:
        return f"the {read_run_info(path)['frames']} frames before it are kept in {path}"
    except (OSError, ValueError):
        return f"nothing was recorded in {path}"


def _is_netx(path: str) -> bool:
    """An HDF5 file with netx's ``/layer`` group and not our format attribute."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "format" not in f.attrs and "layer" in f
    except OSError:
        return False


def load_any(path: str):
    """A network file: ours (``sd.save``) or a lava-dl netx file (``sd.load_netx``)."""
    import sigmadelta as sd

    return sd.load_netx(path) if _is_netx(path) else sd.load(path)


def _is_lava(net) -> bool:
    return any(n.quantizer == "lava" for n in net.weight_layers)


def _scaled(src, scale: float, integers: bool):
    """Frames times ``scale``; rounded to integers for a netx network (Lava's inputs are int)."""
    import numpy as np

    for frame in src:
        x = np.asarray(frame, np.float64) * scale
        yield np.rint(x) if integers else x


def cmd_simulate(args) -> None:
    import sigmadelta as sd
    from sigmadelta.fixedpoint import AccumulatorOverflowError

    if is_many(args):
        return cmd_simulate_many(args)
    out, frames = args.output or "run.h5", args.frames[0]
    _check_output(out, "-o", force=args.force, inputs=(args.net, frames))
    net = load_any(args.net)
    lava = _is_lava(net)
    timing = args.timing or ("pipelined" if lava else "frame")
    src = _frames(frames, args.limit, net.input_shape)
    if args.input_scale != 1.0 or lava:
        src = _scaled(src, args.input_scale, lava)
    try:
        res = sd.simulate(net, src, record=out, progress=not args.quiet, dtype=args.dtype,
                          timing=timing)
    except (AccumulatorOverflowError, sd.NumericOverflowError) as e:
        raise CLIError(f"{e}; {_kept(out)}") from None
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"stopped; {_kept(out)} (complete=False)") from None
    print(res.stats.summary())
    print(f"wrote {out}")


def cmd_report(args) -> None:
    import sigmadelta as sd
    from sigmadelta.io import read_run_info
    from sigmadelta.plots import plot_activity

    if os.path.isdir(args.run):
        return cmd_report_runs(args)
    out = args.output or os.path.splitext(args.run)[0] + ".png"
    _check_output(out, "-o", inputs=(args.run,))
    stats, _, complete = sd.read_run(args.run)
    info = read_run_info(args.run)
    print(stats.summary())
    if not complete:
        print("(the run did not finish: this covers the frames recorded before it stopped)")
    if info["source_complete"] is False:
        print(f"(the source ended early: {info['frames']} of the {info['source_frames_expected']} "
              f"frames it announced)")
    plot_activity(stats, out, title=os.path.basename(args.run))
    print(f"wrote {out}")
    if args.json:
        print(json.dumps({**stats.report(), "complete": complete,
                          "source_complete": info["source_complete"],
                          "fidelity": stats.fidelity and stats.fidelity.to_dict()}))


def cmd_info(args) -> None:
    net = load_any(args.net)
    if _is_lava(net):
        print("lava-dl netx network (Lava fixed point; simulate with timing='pipelined')")
    print(_describe(net))
    print(f"dense MACs per frame: {int(net.dense_macs().sum())}")


def cmd_export(args) -> None:
    import sigmadelta as sd

    if not args.netx:
        raise CLIError("choose the format to export: --netx")
    _check_output(args.output, "-o", force=args.force, inputs=(args.net,))
    sd.save_netx(load_any(args.net), args.output)
    print(f"wrote {args.output}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sigmadelta",
        description="Convert PyTorch networks to event-driven sigma-delta networks and simulate "
                    "them frame by frame on video and other temporal streams, counting the work "
                    "(spike events, synaptic ops) against the dense network.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("convert", help="a torch model -> a sigma-delta network file (net.h5)")
    c.add_argument("model", help="a saved torch model (torch.save(model)), module:factory "
                                 "(imported from the working directory too) or "
                                 "'module:factory(width=16, depth=2)' (literal arguments)")
    c.add_argument("--weights", help="a state dict (.pt) to load into the model first")
    c.add_argument("--input-shape", type=_shape, required=True,
                   help="one frame's shape without batch: 784 or 1,144,176")
    c.add_argument("--scale", default=None, help="herding scale k (> 0; default 32): one number, "
                                                 "one per layer (8,16,32) or name=value pairs")
    c.add_argument("--quantizer", choices=["herding", "threshold"], default="herding")
    c.add_argument("--threshold", default=None, help="send threshold (threshold quantizer)")
    c.add_argument("--weight-bits", type=positive_int, default=None,
                   help="fixed-point weights with this many bits")
    c.add_argument("-o", "--output", default="net.h5")
    c.set_defaults(func=cmd_convert)

    s = sub.add_parser("simulate", help="run net.h5 or a lava-dl netx file over frames (.npy, .h5 "
                                        "or a video) -> run.h5")
    s.add_argument("net")
    s.add_argument("frames", nargs="+",
                   help="frames [T, *input_shape]: .npy, HDF5 (dataset 'frames', or file.h5:/dataset), "
                        "a video file, or an embedded source name (e.g. carphone); videos are "
                        "decoded at the network's input size. Several (or a glob): many streams")
    s.add_argument("-o", "--output", default=None,
                   help="HDF5 recording of stats and outputs (default run.h5); an existing file "
                        "is refused unless --force. For many streams a directory (default runs/)")
    s.add_argument("--force", action="store_true", help="replace an existing -o file")
    s.add_argument("--limit", type=positive_int, default=None, help="at most this many frames")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_many_arguments(s)
    s.add_argument("--timing", choices=["frame", "pipelined"], default=None,
                   help="frame: every layer within a frame; pipelined: one frame of delay per "
                        "weight layer, as on Loihi (default for netx files; else frame)")
    s.add_argument("--input-scale", type=float, default=1.0,
                   help="multiply frames by this (netx files: then rounded to integers, Lava's "
                        "inputs; 64 maps [0, 1] to Lava's 6 fractional bits)")
    s.set_defaults(func=cmd_simulate)

    r = sub.add_parser("report", help="run.h5 (or a runs directory) -> a per-layer table and a PNG")
    r.add_argument("run", help="a recording; also one still being written, or from a killed run; "
                               "or a directory written by simulate with many streams")
    r.add_argument("-o", "--output", help="PNG path (default: next to run.h5)")
    r.add_argument("--json", action="store_true", help="also print a JSON summary")
    r.set_defaults(func=cmd_report)

    i = sub.add_parser("info", help="describe a network file (ours or lava-dl netx)")
    i.add_argument("net")
    i.set_defaults(func=cmd_info)

    e = sub.add_parser("export", help="a network file -> another format (--netx: lava-dl netx)")
    e.add_argument("net", help="net.h5 (converted with --quantizer threshold) or a netx file")
    e.add_argument("--netx", action="store_true", help="write a lava-dl netx HDF5 file")
    e.add_argument("-o", "--output", required=True)
    e.add_argument("--force", action="store_true", help="replace an existing -o file")
    e.set_defaults(func=cmd_export)

    _add_demo_parser(sub)
    return p


def _add_demo_parser(sub) -> None:
    """Register ``sigmadelta demo`` (the runs are in :mod:`sigmadelta.demo`)."""
    d = sub.add_parser(
        "demo", help="a trained network as sigma-delta spikes on real video, with what it saved",
        description="Stream a real video through a shipped, trained network converted to a "
                    "sigma-delta network; print per-layer events, synops, dense MACs, reduction, "
                    "share of neurons updated, fidelity against the dense ANN and energy; write a "
                    "PNG report and the HDF5 recording. Embedded choices: --task face (default: "
                    "the face detector, uncompressed and compressed fixed-point, side by side "
                    "with the dense float ANN) with --video carphone (default), bikes, "
                    "bigbuckbunny or a video file of yours; --task digits (SDQN MLP on Temporal "
                    "digits).")
    d.add_argument("--task", choices=["face", "digits"], default="face")
    d.add_argument("--video", default="carphone",
                   help="embedded video (carphone, bikes, bigbuckbunny) or a video file path")
    d.add_argument("--frames", type=positive_int, default=None, help="at most this many frames")
    d.add_argument("--scale", default=None, help="override the herding scale (one number)")
    d.add_argument("--model", default=None,
                   help="your own video model instead of the face detector: a saved torch model "
                        "file or module:factory, imported from the working directory too, "
                        "optionally with literal arguments: 'module:factory(width=16)' (input "
                        "1 or 3 channels; frames at 144x176)")
    d.add_argument("--weights", default=None, help="state dict to load into --model")
    d.add_argument("--out", default="demo_out", help="output folder (PNG, run.h5, report.json)")
    d.add_argument("--no-frontier", action="store_true",
                   help="skip the error-vs-synops frontier (frontier.png) of the face task")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> None:
    from .demo import run_digits_demo, run_face_demo, run_video_demo

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} is a file; the demo writes a folder of results there")
    try:
        scale = None if args.scale is None else float(args.scale)
    except ValueError:
        raise CLIError(f"--scale {args.scale!r} is not a number") from None
    if scale is not None and not scale > 0:
        raise CLIError(f"--scale must be > 0, got {args.scale}")
    if args.task == "digits":
        run_digits_demo(scale=scale, progress=not args.quiet, out=args.out)
    elif args.model:
        model = load_torch_model(args.model, args.weights)
        run_video_demo(model, args.model, args.video, args.frames, args.out,
                       24.0 if scale is None else scale, not args.quiet)
    else:
        run_face_demo(args.video, args.frames, args.out, scale=scale, progress=not args.quiet,
                      frontier=not args.no_frontier)


def _one_line(e: BaseException) -> str:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    text = " ".join(str(text).split())
    return text or type(e).__name__


def _on_signal(signum, frame):
    """SIGTERM and Ctrl-C: stop between frames, never inside a recording's write
    (:mod:`sigmadelta.stop`)."""
    stop.request("stopped by SIGTERM" if signum == signal.SIGTERM else "stopped")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sigmadelta`` console command; returns the exit status."""
    args = build_parser().parse_args(argv)
    prefix = f"sigmadelta {args.command}"
    main_thread = threading.current_thread() is threading.main_thread()
    caught = [sig for sig in (signal.SIGTERM, signal.SIGINT)  # an ignored Ctrl-C stays ignored
              if main_thread and signal.getsignal(sig) is not signal.SIG_IGN]
    old = {sig: signal.signal(sig, _on_signal) for sig in caught}
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *a, **k: print(
                f"{prefix}: warning: {_one_line(message) if isinstance(message, Warning) else message}",
                file=sys.stderr)
            args.func(args)
    except KeyboardInterrupt as e:
        print(f"{prefix}: {_one_line(e) if e.args else 'stopped'}", file=sys.stderr)
        return 130
    except Exception as e:
        if args.traceback:
            raise
        user = isinstance(e, (CLIError, ValueError, TypeError, OSError, ArithmeticError, KeyError))
        print(f"{prefix}: error: {'' if user else type(e).__name__ + ': '}{_one_line(e)}"
              f"{'' if user else ' (an unexpected error: --traceback shows where)'}", file=sys.stderr)
        return 2 if user else 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        stop.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
