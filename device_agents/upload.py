"""Sending offline results (results.jsonl) to a server: first the ops the server has not seen, then the results.

A server stores a measurement only of an op it knows. Results measured from a `dnas export-ops` folder on a
server that never received those ops would be refused (404), so `upload` registers them first, with their
spec and ONNX file from the ops.jsonl they were measured from (`device-agent profile` records its path in each
result). Registering ops takes the admin token; without one, the error names what to set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from device_agents.errors import AgentError
from device_agents.manifest import read_ops, sha256_of
from fbnet_core.client import NotFoundError, OpUpload, ProfilerClient
from fbnet_core.measurement import MeasurementRecord
from fbnet_core.model_formats import DEFAULT_FORMAT

# runtime.extra's entry naming the ops.jsonl a result was measured from: for `upload` only, never sent.
OPS_MANIFEST_FIELD = "ops_manifest"


def with_manifest(record: MeasurementRecord, manifest: Path) -> MeasurementRecord:
    """`record`, noting (in runtime.extra) the absolute path of the ops.jsonl its op came from."""
    if record.runtime is None:
        return record
    extra = {**record.runtime.get("extra", {}), OPS_MANIFEST_FIELD: str(manifest.resolve())}
    return replace(record, runtime={**record.runtime, "extra": extra})


def for_server(record: MeasurementRecord) -> MeasurementRecord:
    """`record` without the local path `with_manifest` added (a path on this machine is no provenance)."""
    if record.runtime is None or OPS_MANIFEST_FIELD not in record.runtime.get("extra", {}):
        return record
    extra = {k: v for k, v in record.runtime["extra"].items() if k != OPS_MANIFEST_FIELD}
    return replace(record, runtime={**record.runtime, "extra": extra})


def recorded_manifests(records: Iterable[MeasurementRecord]) -> list[Path]:
    paths = {
        Path(str(record.runtime["extra"][OPS_MANIFEST_FIELD]))
        for record in records
        if record.runtime is not None and OPS_MANIFEST_FIELD in record.runtime.get("extra", {})
    }
    return sorted(paths)


def unknown_keys(client: ProfilerClient, keys: Iterable[str]) -> list[str]:
    """The keys among `keys` the server has no op for."""
    missing = []
    for key in sorted(set(keys)):
        try:
            client.get_op(key)
        except NotFoundError:
            missing.append(key)
    return missing


def measured_format(records: Iterable[MeasurementRecord]) -> str:
    """The model format the results were measured in (`profile` notes it in runtime.extra; ONNX when absent)."""
    formats = {
        str(record.runtime.get("extra", {}).get("model_format") or DEFAULT_FORMAT)
        for record in records
        if record.runtime is not None
    }
    if len(formats) > 1:
        raise AgentError(f"the results were measured in several model formats ({', '.join(sorted(formats))}): "
                         "upload each format's results.jsonl on its own")
    return formats.pop() if formats else DEFAULT_FORMAT


@dataclass(frozen=True)
class OpsToRegister:
    uploads: list[OpUpload]
    manifests: list[Path]


def ops_to_register(
    missing: Sequence[str], records: Sequence[MeasurementRecord], manifests: Sequence[Path], results: Path
) -> OpsToRegister:
    """The uploads of the ops `missing`, from `manifests`; an AgentError that says what to do when one is not there."""
    command = f"device-agent upload {results} --ops DIR/ops.jsonl"
    shown = ", ".join(repr(key) for key in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    readable = [path for path in manifests if path.is_file()]
    if not readable:
        where = f" ({', '.join(map(str, manifests))} not found)" if manifests else ""
        raise AgentError(
            f"the server has no op {shown} measured in {results}, and no ops.jsonl to register them from{where}: "
            f"run `{command}` with the folder `dnas export-ops` wrote"
        )
    model_format = measured_format(records)
    by_key = {op.key: op for path in readable for op in read_ops(path, model_format)}
    measured_sha = {record.key: record.onnx_sha256 for record in records}
    uploads = []
    for key in missing:
        op = by_key.get(key)
        if op is None:
            raise AgentError(
                f"op {key!r} is neither on the server nor in {', '.join(map(str, readable))}: run `{command}` with "
                "the ops.jsonl it was measured from"
            )
        if sha256_of(op.onnx_path) != measured_sha[key]:
            raise AgentError(
                f"{op.onnx_path} is not the model measured for {key!r} (sha256 differs): export the ops again, "
                "or give the ops.jsonl the results were measured from with --ops"
            )
        # The file the device ran travels too, so that the server can lease the op to an agent of that format.
        artifacts = {model_format: op.model_path.read_bytes()} if op.model_path is not None else {}
        uploads.append(OpUpload(key, op.spec, op.onnx_path.read_bytes(), artifacts))
    return OpsToRegister(uploads, readable)


def register_ops(server: str, admin_token: str | None, plan: OpsToRegister) -> list[str]:
    """POST /ops with the admin token; the keys the server created."""
    if not admin_token:
        raise AgentError(
            f"the server lacks {len(plan.uploads)} of the measured ops; registering them from "
            f"{', '.join(map(str, plan.manifests))} needs the admin token: set PROFILER_ADMIN_TOKEN (or --admin-token)"
        )
    with ProfilerClient(server, admin_token) as admin:
        return admin.upload_ops(plan.uploads).created
