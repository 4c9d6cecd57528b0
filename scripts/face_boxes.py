"""Independent face boxes for a video: OpenCV's frontal-face cascade classifier, run once.

The boxes are ground truth for *where the face is*, made by a detector that has nothing to do
with the project's networks (Viola & Jones' boosted Haar cascade as shipped with OpenCV,
``haarcascade_frontalface_default.xml``). They are computed on exactly the frames the demo feeds
the detector (gray, resized to the detector's input shape, e.g. 120 frames of ``(1, 144, 176)``
for carphone), converted to 8 bits, and stored as JSON::

    {"video": "carphone", "frame_shape": [1, 144, 176], "source": "<how they were made>",
     "boxes": [[x0, y0, x1, y1] or null, ...]}   # one entry per frame

``[x0, y0, x1, y1]`` are pixel indices of that frame (columns ``x0 .. x1 - 1``, rows
``y0 .. y1 - 1``); ``null`` where the cascade finds no face. Where it finds several, the largest
box is kept. Needs ``opencv-python-headless`` (``pip install "sigmadelta[annotate]"``).

Example (the command that made ``datasets/annotations/carphone_faces.json``)::

    python scripts/face_boxes.py --video carphone --out datasets/annotations/carphone_faces.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

__all__ = ["detect", "main"]

#: Cascade parameters (OpenCV's usual ones; the minimum size is a quarter of the frame height).
SCALE_FACTOR = 1.05
MIN_NEIGHBORS = 5
MIN_SIZE_FRACTION = 0.25


def _cv2():
    """OpenCV, or an ImportError naming the package to install."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError("scripts/face_boxes.py needs OpenCV: pip install opencv-python-headless "
                          '(or pip install "sigmadelta[annotate]")') from e
    return cv2


def detect(frames: np.ndarray) -> list[list[int] | None]:
    """Largest frontal-face box per frame of ``frames`` ``[T, 1, H, W]`` (floats in [0, 1])."""
    cv2 = _cv2()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's haarcascade_frontalface_default.xml could not be loaded")
    side = int(round(MIN_SIZE_FRACTION * frames.shape[-2]))
    out: list[list[int] | None] = []
    for f in tqdm(frames, desc="cascade"):
        img = np.clip(np.rint(f[0] * 255.0), 0, 255).astype(np.uint8)
        found = cascade.detectMultiScale(img, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS,
                                         minSize=(side, side))
        if len(found) == 0:
            out.append(None)
            continue
        x, y, w, h = (int(v) for v in max(found, key=lambda b: int(b[2]) * int(b[3])))
        out.append([x, y, x + w, y + h])
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default="carphone", help="embedded video name")
    p.add_argument("--shape", type=int, nargs=2, default=(144, 176),
                   help="frame height and width the detector is fed")
    p.add_argument("--frames", type=int, default=None, help="first N frames (default all)")
    p.add_argument("--out", default="datasets/annotations/carphone_faces.json")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; returns the JSON record written. Arguments are parsed (and
    ``--help`` answered) before OpenCV is imported, so only a real run needs it."""
    args = _parser().parse_args(argv)
    try:
        cv2 = _cv2()
    except ImportError as e:
        raise SystemExit(f"error: {e}") from None
    from sigmadelta.datasets import open_source

    kw = {} if args.frames is None else {"limit": args.frames}
    src = open_source(args.video, size=tuple(args.shape), gray=True, **kw)
    frames = src.to_array()
    boxes = detect(frames)
    record = {
        "video": args.video,
        "frame_shape": list(frames.shape[1:]),
        "source": f"OpenCV {cv2.__version__} CascadeClassifier haarcascade_frontalface_default.xml, "
                  f"scaleFactor={SCALE_FACTOR}, minNeighbors={MIN_NEIGHBORS}, minSize="
                  f"{MIN_SIZE_FRACTION} of the frame height, largest box per frame, on the gray "
                  f"{args.shape[0]}x{args.shape[1]} frames of sigmadelta.datasets.open_source"
                  f"({args.video!r}) in 8 bits; python scripts/face_boxes.py --video {args.video}",
        "boxes": boxes,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, separators=(",", ":")) + "\n", encoding="utf-8")
    found = sum(b is not None for b in boxes)
    print(f"{args.video}: a face box on {found} of {len(boxes)} frames -> {out}")
    return record


if __name__ == "__main__":
    main()
