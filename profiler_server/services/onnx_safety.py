"""Refuse ONNX files that would make a device agent read files or allocate without bound (docs/reliability.md).

Two hostile shapes pass `onnx.checker`: a tensor whose data lives in an "external" file next to the model (a path
inside the model's folder is accepted, and the checker even stats it, relative to the server's working
directory), which an agent's runtime would then read from its own disk; and a graph input or output declared
with an enormous static shape, which an agent would allocate before the first run. Ops are single-file and small
(docs/contracts.md), so both are refused before the checker looks at the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto

# 2**27 float32 elements = 512 MiB: far above any op's tensor (the largest FBNet input is 1x3x224x224 = 150,528).
MAX_TENSOR_ELEMENTS = 1 << 27


class UnsafeModelError(ValueError):
    pass


def _node_tensors(node: NodeProto) -> Iterator[TensorProto]:
    for attribute in node.attribute:
        if attribute.type == AttributeProto.TENSOR:
            yield attribute.t
        elif attribute.type == AttributeProto.TENSORS:
            yield from attribute.tensors
        elif attribute.type == AttributeProto.SPARSE_TENSOR:
            yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
        elif attribute.type == AttributeProto.GRAPH:
            yield from _graph_tensors(attribute.g)
        elif attribute.type == AttributeProto.GRAPHS:
            for graph in attribute.graphs:
                yield from _graph_tensors(graph)


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _declared_elements(value: ValueInfoProto) -> int:
    dims = value.type.tensor_type.shape.dim
    return math.prod(d.dim_value for d in dims if d.HasField("dim_value"))


def check_self_contained(model: ModelProto) -> None:
    """Raise UnsafeModelError for external tensor data anywhere, or a graph input/output over the size cap."""
    tensors = list(_graph_tensors(model.graph))
    for function in model.functions:
        for node in function.node:
            tensors.extend(_node_tensors(node))
    for tensor in tensors:
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            raise UnsafeModelError(
                f"tensor {tensor.name!r} keeps its data in an external file ({location!r}); "
                "ops must be one self-contained file"
            )
    for value in [*model.graph.input, *model.graph.output]:
        elements = _declared_elements(value)
        if elements > MAX_TENSOR_ELEMENTS:
            raise UnsafeModelError(
                f"{value.name!r} declares {elements:,} elements; the limit is {MAX_TENSOR_ELEMENTS:,}"
            )
