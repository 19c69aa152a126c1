"""The file formats the parts exchange, one module each; every file carries a `format_version`.

ops.jsonl (`ops_manifest`), results.jsonl (`results`), a LUT (`lut_file`), validation.json (`validation_file`) and
architecture files (`architecture_file`); `version` holds the rule they share. docs/contracts.md describes each.
"""
