"""The ``sigmadelta`` command: convert, simulate, report, info (and demo).

Each subcommand is a thin layer over the library API; run
``sigmadelta SUBCOMMAND --help`` for its options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

__all__ = ["main", "build_parser"]

EPILOG = """examples:
  sigmadelta convert mypkg.nets:make_net --input-shape 1,144,176 --scale 32 -o net.h5
  sigmadelta convert model.pt --input-shape 784 --quantizer threshold --threshold 0.02 -o net.h5
  sigmadelta simulate net.h5 frames.npy -o run.h5
  sigmadelta report run.h5 -o report.png
  sigmadelta demo
"""


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (use e.g. 1,144,176)") from None


def _per_layer(text: str | None):
    """'32' -> 32.0; '8,16,32' -> list; 'conv1=8,fc=16' -> dict."""
    if text is None:
        return None
    parts = [p for p in text.split(",") if p]
    if all("=" in p for p in parts):
        return {k: float(v) for k, v in (p.split("=", 1) for p in parts)}
    vals = [float(p) for p in parts]
    return vals[0] if len(vals) == 1 else vals


def load_torch_model(spec: str, weights: str | None = None):
    """A saved torch model file, or ``module:factory`` (called without arguments)."""
    import torch

    if os.path.exists(spec):
        model = torch.load(spec, map_location="cpu", weights_only=False)
        if isinstance(model, dict):
            raise SystemExit(f"{spec} holds a state dict, not a model: use module:factory "
                             f"--weights {spec}")
    elif ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            model = getattr(importlib.import_module(mod_name), attr)()
        except (ImportError, AttributeError) as e:
            raise SystemExit(f"cannot load {spec!r}: {e}") from None
    else:
        raise SystemExit(f"{spec!r} is neither a file nor a module:factory spec")
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu"))
    return model.eval()


def cmd_convert(args) -> None:
    import sigmadelta as sd

    model = load_torch_model(args.model, args.weights)
    net = sd.convert(model, args.input_shape, scale=_per_layer(args.scale) or 32.0,
                     quantizer=args.quantizer, threshold=_per_layer(args.threshold),
                     weight_bits=args.weight_bits)
    sd.save(net, args.output)
    print(net.summary())
    print(f"wrote {args.output}")


def _frames(spec: str, limit: int | None, shape: tuple[int, ...]):
    """Open frames; a video is decoded at the network's size (gray for one channel)."""
    from sigmadelta.datasets import VideoSource, open_source

    kw = {"limit": limit} if limit else {}
    src = open_source(spec, **kw)
    if isinstance(src, VideoSource) and len(shape) == 3 and src.frame_shape != tuple(shape):
        src = open_source(spec, size=shape[1:], gray=shape[0] == 1, **kw)
    return src


def cmd_simulate(args) -> None:
    import sigmadelta as sd

    net = sd.load(args.net)
    src = _frames(args.frames, args.limit, net.input_shape)
    res = sd.simulate(net, src, record=args.output, progress=not args.quiet)
    print(res.stats.summary())
    print(f"wrote {args.output}")


def cmd_report(args) -> None:
    import sigmadelta as sd
    from sigmadelta.plots import plot_activity

    stats, _, complete = sd.read_run(args.run)
    print(stats.summary())
    if not complete:
        print("(the run did not finish: this covers the frames recorded before it stopped)")
    out = args.output or os.path.splitext(args.run)[0] + ".png"
    plot_activity(stats, out, title=os.path.basename(args.run))
    print(f"wrote {out}")
    if args.json:
        print(json.dumps({"frames": stats.n_frames, "per_frame": stats.per_frame(),
                          "reduction": stats.total_reduction(), "energy_J": stats.energy()}))


def cmd_info(args) -> None:
    import sigmadelta as sd

    net = sd.load(args.net)
    print(net.summary())
    print(f"dense MACs per frame: {int(net.dense_macs().sum())}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sigmadelta",
        description="Convert PyTorch networks to event-driven sigma-delta networks and simulate "
                    "them frame by frame on video and other temporal streams, counting the work "
                    "(spike events, synaptic ops) against the dense network.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("convert", help="a torch model -> a sigma-delta network file (net.h5)")
    c.add_argument("model", help="a saved torch model (torch.save(model)) or module:factory")
    c.add_argument("--weights", help="a state dict (.pt) to load into the model first")
    c.add_argument("--input-shape", type=_shape, required=True,
                   help="one frame's shape without batch: 784 or 1,144,176")
    c.add_argument("--scale", default=None,
                   help="herding scale k: one number, one per layer (8,16,32) or name=value pairs")
    c.add_argument("--quantizer", choices=["herding", "threshold"], default="herding")
    c.add_argument("--threshold", default=None, help="send threshold (threshold quantizer)")
    c.add_argument("--weight-bits", type=int, default=None, help="fixed-point weights with this many bits")
    c.add_argument("-o", "--output", default="net.h5")
    c.set_defaults(func=cmd_convert)

    s = sub.add_parser("simulate", help="run net.h5 over frames (.npy, .h5 or a video) -> run.h5")
    s.add_argument("net")
    s.add_argument("frames", help="frames [T, *input_shape]: .npy, HDF5 (dataset 'frames'), a video "
                                  "file, or an embedded source name (e.g. carphone); videos are "
                                  "decoded at the network's input size")
    s.add_argument("-o", "--output", default="run.h5", help="HDF5 recording of stats and outputs")
    s.add_argument("--limit", type=int, default=None, help="at most this many frames")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_simulate)

    r = sub.add_parser("report", help="run.h5 -> a per-layer table and a PNG")
    r.add_argument("run")
    r.add_argument("-o", "--output", help="PNG path (default: next to run.h5)")
    r.add_argument("--json", action="store_true", help="also print a JSON summary")
    r.set_defaults(func=cmd_report)

    i = sub.add_parser("info", help="describe a network file")
    i.add_argument("net")
    i.set_defaults(func=cmd_info)

    try:
        from .demo import add_demo_parser
    except ImportError:
        pass
    else:
        add_demo_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sigmadelta`` console command."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"sigmadelta {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
