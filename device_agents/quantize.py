"""int8 precision for the onnxruntime backend: each op is statically quantised on the agent before it is timed.

A deployment that runs int8 models is a different device from the same CPU running fp32: its kernels, and so its
LUT, differ (on x86 CPUs with VNNI, blocks with grouped 1x1 convolutions cost more in int8 than in fp32 and wide
expansions less: docs/agents.md). The server and the search client keep handing out fp32 ONNX ops; the agent converts them the way a
user would ship them: onnxruntime's `quant_pre_process` (shape inference, BatchNorm folded into the convolution), then
`quantize_static` in QDQ format - signed 8-bit per-channel weights, unsigned 8-bit activations - which onnxruntime
fuses into integer kernels (QLinearConv, QLinearAdd, ...) when it loads the model.

Calibration feeds seeded standard-normal inputs: the scales they give are not the ones real images would, but an
integer kernel's speed does not depend on its scales, and the LUT only times. Accuracy of an int8 model is a
training question this module does not answer.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from device_agents.errors import OpFailedError

PRECISIONS = ("fp32", "int8")
INT8_RECIPE = "static QDQ: s8 per-channel weights, u8 activations, calibrated on standard-normal inputs"
CALIBRATION_BATCHES = 4


class _NormalInputs:
    """onnxruntime's CalibrationDataReader protocol: a few seeded standard-normal feeds, then None."""

    def __init__(self, model_path: Path) -> None:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        self._feeds = iter(
            [
                {item.name: rng.standard_normal(item.shape).astype(np.float32) for item in session.get_inputs()}
                for _ in range(CALIBRATION_BATCHES)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs per model on the root logger; the agent's log would get lines per op."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class Int8Quantizer:
    """Quantised copies of fp32 ONNX ops, made once per op per process, in a folder removed at exit."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="agent-int8-")

    def quantized(self, source: Path, sha256: str) -> Path:
        """The int8 model of `source` (whose content hash is `sha256`)."""
        target = Path(self._folder.name) / f"{sha256}.int8.onnx"
        if target.exists():
            return target
        # Imported here: the quantisation tool pulls in onnx, which fp32 agents never need.
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = target.with_suffix(".prepared.onnx")
        try:
            with _quiet_root_logger():
                quant_pre_process(str(source), str(prepared))
                quantize_static(
                    str(prepared),
                    str(target),
                    _NormalInputs(prepared),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                )
        except Exception as exc:  # the tool raises anything from onnx's checker to its own ValueErrors
            target.unlink(missing_ok=True)
            raise OpFailedError(f"could not quantise {source.name} to int8: {exc}") from exc
        finally:
            prepared.unlink(missing_ok=True)
        return target
