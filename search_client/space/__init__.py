"""The search space as torch modules: the candidate blocks, the fixed layers, whole networks, the model zoo, ops
rebuilt from their specs, their ONNX export, and parameter / multiply-add counts. The space as data is
`fbnet_core.space` and `fbnet_core.blocks`."""
