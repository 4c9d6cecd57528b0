"""Model definitions and small trained checkpoints (installed as ``sigmadelta.models``)."""
