"""The file formats an op's model is compiled to, and which runtime runs which.

An op is one spec (fbnet_core.keys) compiled once per format: ONNX for onnxruntime (and the torch backend,
which rebuilds the op from its spec but is served the ONNX file for its sha256), an ExecuTorch program (`.pte`,
XNNPACK delegate) for ExecuTorch, a LiteRT flatbuffer (`.tflite`) for LiteRT. A device declares its runtime and
format when it registers; the server keeps one file per (op key, format).
"""

from __future__ import annotations

from typing import Final, Literal

from fbnet_core.errors import FbnetLutError

ModelFormat = Literal["onnx", "pte", "tflite"]
# The formats compiled besides ONNX (the op's defining file, always present).
CompiledFormat = Literal["pte", "tflite"]
MODEL_FORMATS: Final[tuple[ModelFormat, ...]] = ("onnx", "pte", "tflite")
DEFAULT_FORMAT: Final[ModelFormat] = "onnx"

# The file name suffix of each format (an op's file is `<key><suffix>`).
FORMAT_SUFFIX: Final[dict[str, str]] = {"onnx": ".onnx", "pte": ".pte", "tflite": ".tflite"}

# The format each runtime loads; a runtime absent here (a user's own) declares its format explicitly.
RUNTIME_FORMAT: Final[dict[str, ModelFormat]] = {
    "onnxruntime": "onnx",
    "torch": "onnx",
    "executorch": "pte",
    "litert": "tflite",
}
DEFAULT_RUNTIME: Final[str] = "onnxruntime"

# Both compiled formats are FlatBuffers, whose 4-byte file identifier sits at offset 4: a cheap check that an
# upload (or a download) is the format it claims to be, done before any runtime parses it.
_FLATBUFFER_IDENTIFIERS: Final[dict[str, tuple[bytes, ...]]] = {"pte": (b"ET12",), "tflite": (b"TFL3",)}


class UnknownFormatError(FbnetLutError, ValueError):
    """A format name that is not one of MODEL_FORMATS."""


def check_format(name: str) -> ModelFormat:
    if name not in MODEL_FORMATS:
        raise UnknownFormatError(f"unknown model format {name!r}; one of {', '.join(MODEL_FORMATS)}")
    return name  # type: ignore[return-value]  # narrowed by the membership test


def format_for_runtime(runtime: str) -> ModelFormat:
    """The format a runtime loads; an unknown runtime must state its format."""
    try:
        return RUNTIME_FORMAT[runtime]
    except KeyError:
        raise UnknownFormatError(
            f"runtime {runtime!r} has no default model format; state one of {', '.join(MODEL_FORMATS)}"
        ) from None


def header_problem(model_format: ModelFormat, content: bytes) -> str | None:
    """Why `content` is not a `model_format` file, or None when its header matches. ONNX (a protobuf without a
    magic number) is checked by loading it (fbnet_core.onnx_safety, the server's upload check) instead."""
    identifiers = _FLATBUFFER_IDENTIFIERS.get(model_format)
    if identifiers is None:
        return None
    found = content[4:8]
    if len(content) < 8 or found not in identifiers:
        expected = " or ".join(repr(i.decode()) for i in identifiers)
        return f"not a .{model_format} file: file identifier {found!r}, expected {expected}"
    return None
