"""Refuse ONNX files that would make a device agent read files or allocate without bound (docs/reliability.md).

Hostile shapes that pass `onnx.checker`:
- a tensor whose data lives in an "external" file next to the model (a path inside the model's folder is accepted,
  and the checker even stats it, relative to the server's working directory), which an agent's runtime would then
  read from its own disk - anywhere in the model: the graph, its subgraphs, functions, and `training_info`;
- a negative dimension, which runtimes read as a huge unsigned size;
- a tensor that the graph computes, whose size only shape inference reveals: 278 bytes of `ConstantOfShape`
  asking for gibibytes, allocated by onnxruntime when it creates the session.

`check_self_contained` refuses the first two before the checker looks at the model; `estimate_allocation` runs
strict shape inference (with data propagation, so shapes computed from constants are known) and requires every
value - inputs, initializers, constants, every intermediate, outputs - to be a tensor of static, non-negative
shape: what the model can allocate is then bounded by their sizes, which `check_allocation` holds to limits. The
server checks each uploaded op; the agent checks each model again before it loads it, against its own bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto

# 2**27 float32 elements = 512 MiB: far above any op's tensor (the largest FBNet input is 1x3x224x224 = 150,528).
MAX_TENSOR_ELEMENTS = 1 << 27
# All values of a model together (an upper bound: runtimes reuse memory): a whole FBNet at 224x224 needs ~0.3 GiB.
MAX_MODEL_BYTES = 4 << 30


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


def _subgraphs(graph: GraphProto) -> Iterator[GraphProto]:
    """`graph` and every graph nested in its nodes' attributes."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                yield from _subgraphs(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for nested in attribute.graphs:
                    yield from _subgraphs(nested)


def _model_graphs(model: ModelProto) -> Iterator[GraphProto]:
    """Every graph of the model: the main one, and training_info's initialization and algorithm."""
    yield model.graph
    for training in model.training_info:
        yield training.initialization
        yield training.algorithm


def _model_tensors(model: ModelProto) -> Iterator[TensorProto]:
    for graph in _model_graphs(model):
        yield from _graph_tensors(graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _value_dims(value: ValueInfoProto) -> list[int | None]:
    """A tensor value's dims (None: unknown); refused when not a tensor."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UnsafeModelError(f"{value.name!r} is a {kind or 'value of no type'}: only tensors are allowed")
    if not value.type.tensor_type.HasField("shape"):
        return [None]
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def check_self_contained(model: ModelProto) -> None:
    """Raise UnsafeModelError for external tensor data or a negative dimension anywhere, or a graph input/output
    over the size cap."""
    for tensor in _model_tensors(model):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            raise UnsafeModelError(
                f"tensor {tensor.name!r} keeps its data in an external file ({location!r}); "
                "ops must be one self-contained file"
            )
        if any(d < 0 for d in tensor.dims):
            raise UnsafeModelError(f"tensor {tensor.name!r} has a negative dimension {list(tensor.dims)}")
    for graph in (nested for top in _model_graphs(model) for nested in _subgraphs(top)):
        for value in [*graph.input, *graph.output, *graph.value_info]:
            if value.type.WhichOneof("value") == "tensor_type":
                dims = [d.dim_value for d in value.type.tensor_type.shape.dim if d.HasField("dim_value")]
                if any(d < 0 for d in dims):
                    raise UnsafeModelError(f"{value.name!r} declares a negative dimension {dims}")
    for value in [*model.graph.input, *model.graph.output]:
        elements = math.prod(d for d in _value_dims(value) if d is not None)
        if elements > MAX_TENSOR_ELEMENTS:
            raise UnsafeModelError(
                f"{value.name!r} declares {elements:,} elements; the limit is {MAX_TENSOR_ELEMENTS:,}"
            )


@dataclass(frozen=True, slots=True)
class AllocationEstimate:
    total_bytes: int  # every value's size added up: an upper bound on what the tensors need
    largest_name: str
    largest_elements: int


def _element_bytes(elem_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, ValueError, TypeError) as exc:
        raise UnsafeModelError(f"unsupported element type {elem_type}") from exc


def estimate_allocation(model: ModelProto) -> AllocationEstimate:
    """Every value's static size after strict shape inference; UnsafeModelError if any is unknown or not a tensor."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError, ValidationError, ...: all mean "cannot bound it"
        raise UnsafeModelError(f"shape inference failed: {str(exc).splitlines()[0][:300]}") from exc
    total = 0
    largest = ("", 0)
    for graph in _subgraphs(inferred.graph):
        typed = {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}
        named: list[tuple[str, list[int | None], int]] = []
        for tensor in graph.initializer:
            named.append((tensor.name, list(tensor.dims), tensor.data_type))
        for node in graph.node:
            for tensor in _node_tensors(node) if node.op_type == "Constant" else ():
                named.append((tensor.name or node.output[0], list(tensor.dims), tensor.data_type))
            for output in node.output:
                if not output:
                    continue  # an optional output left out
                if output not in typed:
                    raise UnsafeModelError(
                        f"{output!r} (output of a {node.op_type}) has no shape that inference knows"
                    )
                value = typed[output]
                named.append((output, _value_dims(value), value.type.tensor_type.elem_type))
        named += [(v.name, _value_dims(v), v.type.tensor_type.elem_type) for v in graph.input]
        for name, dims, elem_type in named:
            if any(d is None for d in dims):
                raise UnsafeModelError(f"{name!r} has a shape that inference cannot make static: {dims}")
            elements = math.prod(d for d in dims if d is not None)
            total += elements * _element_bytes(elem_type)
            if elements > largest[1]:
                largest = (name, elements)
    return AllocationEstimate(total_bytes=total, largest_name=largest[0], largest_elements=largest[1])


def check_allocation(
    model: ModelProto, max_tensor_elements: int = MAX_TENSOR_ELEMENTS, max_total_bytes: int = MAX_MODEL_BYTES
) -> AllocationEstimate:
    """The model's allocation estimate, or UnsafeModelError when a tensor or the total is past its limit."""
    estimate = estimate_allocation(model)
    if estimate.largest_elements > max_tensor_elements:
        raise UnsafeModelError(
            f"{estimate.largest_name!r} would hold {estimate.largest_elements:,} elements; "
            f"the limit is {max_tensor_elements:,}"
        )
    if estimate.total_bytes > max_total_bytes:
        raise UnsafeModelError(
            f"its tensors add up to {estimate.total_bytes / 2**20:,.0f} MiB; the limit is {max_total_bytes / 2**20:,.0f} MiB"
        )
    return estimate
