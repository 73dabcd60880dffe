"""The choices of ``birdspec export`` (defined here, without PyTorch, so the CLI starts fast)."""

EXPORT_FORMATS = ("onnx", "torchscript")
CHECK_TOLERANCE = 1e-4
"""Largest absolute logit difference accepted between an export and PyTorch."""
ONNX_OPSET = 17
