"""fbnet_core: the vocabulary the server, the agents and the search client share.

The search space and its blocks as data, op specs and LUT keys, the file formats and their versions, the
measurement record, sample statistics, fidelity metrics, the LUT sum and the HTTP client of the protocol.
Importable without torch and without the server's dependencies (FastAPI, SQLAlchemy): every part imports it,
it imports none of them (`lint-imports` checks this).
"""

__version__ = "0.1.0"
