"""Model definitions and small trained checkpoints (installed as ``sigmadelta.models``).

Plain PyTorch models built only from layers the sigma-delta converter supports, plus
:func:`load_pretrained` / :func:`list_pretrained` for the checkpoints trained by
``scripts/train_digits.py`` and ``scripts/train_video.py``.
"""

from .lenet import lenet5_caffe
from .mlp import lenet_300_100, mlp, sdqn_mlp
from .registry import FACTORIES, list_pretrained, load_pretrained, pretrained_info
from .video import (
    FACE_PATCH,
    cell_centre,
    cell_to_pixel,
    face_decision,
    face_detector,
    face_hits,
    receptive_field,
)

__all__ = [
    "FACE_PATCH",
    "FACTORIES",
    "cell_centre",
    "cell_to_pixel",
    "face_decision",
    "face_detector",
    "face_hits",
    "lenet5_caffe",
    "lenet_300_100",
    "list_pretrained",
    "load_pretrained",
    "mlp",
    "pretrained_info",
    "receptive_field",
    "sdqn_mlp",
]
