"""What the store and the code that writes trials agree on: keys and metric names.

The training runner, ``--warm-start`` and the store itself compute these the same way, so they live
apart from any query: a trial's configuration key, the name of a per-fold metric, and the metric a
resumed trial reports its restored epochs under.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Metric of a trial that continued an interrupted one from its checkpoint: the epochs it restored
#: instead of training (written by hpsearch.training.runner).
EPOCHS_RESTORED_METRIC = "epochs_restored"


def config_key(identity: Any) -> str:
    """sha256 of a trial's identity (its parameters, plus anything else that makes it distinct work)
    as canonical JSON: equal configurations get equal keys whichever process proposed them.

    Args:
        identity: any JSON-able value; values JSON cannot hold are written as their ``str``.

    Returns:
        64 hexadecimal digits.
    """
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fold_metric_name(fold: int, name: str) -> str:
    """How a per-fold metric is named in curves and metrics: ``split0_loss``, as in ``cv_results_``."""
    return f"split{fold}_{name}"
