"""Video files decoded frame by frame with PyAV (FFmpeg).

:class:`VideoSource` streams any container/codec FFmpeg can decode (mp4, avi,
mov, mkv, webm, ...).  Frames are decoded one at a time and never collected, so
arbitrarily long videos use constant memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from .base import FrameSource, SourceEndedEarlyWarning, SourceError, frame_range

__all__ = ["VIDEO_EXTENSIONS", "VideoSource"]

#: File extensions recognised as video by :func:`~sigmadelta.datasets.as_source`.
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv",
        ".flv", ".ogv", ".ts", ".mts", ".3gp", ".y4m", ".gif",
    }
)


def _positive_pair(value: object, what: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair of integers, got {value!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return a, b


class VideoSource(FrameSource):
    """Frames of a video file, decoded lazily with PyAV.

    Parameters
    ----------
    path : str or Path
        The video file.
    gray : bool, default True
        Yield luminance frames ``(1, H, W)``; otherwise RGB ``(3, H, W)``.
    size : (int, int), optional
        Resize frames to ``(height, width)`` (area interpolation, after crop).
    crop : (int, int, int, int), optional
        ``(top, left, height, width)`` window cut from the decoded frame before
        resizing.
    start : int, default 0
        Index of the first decoded frame kept.
    stride : int, default 1
        Keep every ``stride``-th frame from ``start`` on.
    limit : int, optional
        Yield at most this many frames (at least 1).
    stream : int, default 0
        Index of the video stream to decode.
    name : str, optional
        Name (default: the file stem).

    Attributes
    ----------
    fps : float or None
        Average frame rate of the stream (before ``stride``).
    source_size : (int, int)
        ``(height, width)`` of the decoded frames.
    total_frames : int
        Frames in the stream before start/stride/limit.

    Warns
    -----
    SourceEndedEarlyWarning
        When the file decodes to fewer frames than its header announces (a
        truncated download, say); the frames that did decode are given.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    SourceError
        If the file is not a readable container, has no video stream, or the
        selection yields no frames.

    Notes
    -----
    ``len()`` uses the frame count stored in the container header and falls
    back to counting packets in a demux pass (no decoding) when the header has
    none.  Frames before ``start`` and skipped by ``stride`` are still decoded
    (inter-frame codecs require it) but not converted.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        gray: bool = True,
        size: tuple[int, int] | None = None,
        crop: tuple[int, int, int, int] | None = None,
        start: int = 0,
        stride: int = 1,
        limit: int | None = None,
        stream: int = 0,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such video file: {self.path}")
        self.name = name or self.path.stem
        self.gray = bool(gray)
        self._stream_index = int(stream)
        with self._open() as container:
            vs = self._video_stream(container)
            height, width = vs.codec_context.height, vs.codec_context.width
            self.fps = float(vs.average_rate) if vs.average_rate else None
            total = vs.frames if vs.frames and vs.frames > 0 else None
        if total is None:
            total = self._count_packets()
        if not height or not width:
            raise SourceError(f"{self.path}: video stream has no frame size")
        self.source_size = (int(height), int(width))
        self.total_frames = int(total)
        self.crop = self._check_crop(crop)
        self.size = _positive_pair(size, "size") if size is not None else None
        self._range = frame_range(self.total_frames, start, stride, limit)
        if len(self._range) == 0:
            raise SourceError(
                f"{self.path} yields no frames "
                f"(stream has {self.total_frames} frames, start={self._range.start})"
            )
        out_hw = self.size or (self.crop[2:] if self.crop else self.source_size)
        self.frame_shape = (1 if self.gray else 3, *out_hw)

    # -- opening -----------------------------------------------------------
    def _open(self) -> av.container.InputContainer:
        try:
            return av.open(str(self.path), mode="r")
        except av.FFmpegError as exc:
            raise SourceError(f"cannot open {self.path} as a video: {exc}") from exc

    def _video_stream(self, container: av.container.InputContainer) -> av.VideoStream:
        streams = container.streams.video
        if not streams:
            raise SourceError(f"{self.path} has no video stream")
        if not 0 <= self._stream_index < len(streams):
            raise SourceError(
                f"{self.path}: video stream {self._stream_index} requested, "
                f"file has {len(streams)}"
            )
        return streams[self._stream_index]

    def _count_packets(self) -> int:
        """Count video packets without decoding (for headers lacking a count)."""
        with self._open() as container:
            vs = self._video_stream(container)
            try:
                return sum(1 for p in container.demux(vs) if p.size > 0)
            except av.FFmpegError as exc:
                raise SourceError(f"cannot read {self.path}: {exc}") from exc

    def _check_crop(self, crop: object) -> tuple[int, int, int, int] | None:
        if crop is None:
            return None
        try:
            top, left, h, w = (int(v) for v in crop)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"crop must be (top, left, height, width), got {crop!r}") from None
        H, W = self.source_size
        if top < 0 or left < 0 or h < 1 or w < 1 or top + h > H or left + w > W:
            raise ValueError(
                f"crop {crop!r} (top, left, height, width) does not fit in "
                f"the {H}x{W} frames of {self.path}"
            )
        return top, left, h, w

    # -- iteration ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[np.ndarray]:
        r = self._range
        if not r:
            return
        wanted, last, yielded = r.start, r[-1], 0
        with self._open() as container:
            vs = self._video_stream(container)
            vs.thread_type = "AUTO"
            index = -1
            try:
                for frame in container.decode(vs):
                    index += 1
                    if index < wanted:
                        continue
                    yield self._convert(frame)
                    yielded += 1
                    if index >= last or yielded >= len(r):
                        return
                    wanted += r.step
            except av.FFmpegError as exc:
                raise SourceError(
                    f"{self.path}: decoding failed at frame {index + 1}: {exc}"
                ) from exc
        warnings.warn(  # the decoder ran dry before the last frame of the range
            f"{self.path} ended early: {index + 1} of the {self.total_frames} frames its header "
            f"announces could be decoded (a truncated or damaged file?); {yielded} of the "
            f"{len(r)} frames asked for were given",
            SourceEndedEarlyWarning,
            stacklevel=2,
        )

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        fmt = "gray" if self.gray else "rgb24"
        if self.crop is None:
            if self.size is None:
                img = frame.to_ndarray(format=fmt)
            else:
                h, w = self.size
                img = frame.reformat(width=w, height=h, format=fmt, interpolation="AREA")
                img = img.to_ndarray()
        else:
            top, left, h, w = self.crop
            img = frame.to_ndarray(format=fmt)[top : top + h, left : left + w]
            if self.size is not None:
                h, w = self.size
                cut = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
                img = cut.reformat(width=w, height=h, interpolation="AREA").to_ndarray()
        img = img[None] if self.gray else img.transpose(2, 0, 1)
        out = np.empty(self.frame_shape, dtype=np.float32)
        np.multiply(img, np.float32(1.0 / 255.0), out=out, casting="unsafe")
        return out
