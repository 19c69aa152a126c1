"""One torch thread per test process: this machine's 2 cores are shared by parallel test runs, and torch's
intra-op threads spin-wait, so oversubscription makes small CPU steps tens of times slower."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
