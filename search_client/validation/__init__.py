"""Whether the LUT predicts the device: whole networks measured against the LUT's sum, calibrations fitted on some
and judged on the others, and the figures (fidelity scatter, accuracy vs latency, theta pull, search plots)."""
