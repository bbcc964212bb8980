"""Datasets for a search: load a bundled dataset, a CSV or an NPZ, check it, split it and preprocess it.

``load_dataset`` is the one entry point. It refuses unusable data before any training with a
``DataError`` that names the file and the column and says what must hold. The returned ``Dataset``
carries train/validation/test arrays ready for Keras, a JSON-able ``reference`` to reload the same data,
a ``fingerprint`` of the raw content (so a resume can tell whether the data changed), and the fitted
``Preprocessor`` whose ``to_dict()`` lets the export step rebuild the same transform as Keras layers.

The package reads in this order: ``readers`` (sources and their checks), ``memory`` (a DataFrame or
arrays given in memory, encoded for the trial store: ``in_memory_data``), ``targets`` (task and labels),
``splitting`` (train/validation/test rows), ``preprocessing`` (the feature transform) and ``dataset``
(``Dataset``, ``load_dataset``, ``reload_dataset``).

pandas and scikit-learn are imported inside the functions that need them: the CLI's query commands import
this package and must not pay for them. TensorFlow/Keras are never imported here.
"""

from .dataset import STORED, Dataset, load_dataset, reload_dataset
from .memory import InMemoryData, in_memory_data, stored_data
from .preprocessing import MISSING_CATEGORY, Preprocessor
from .readers import BUILTIN_DATASETS, BUNDLED_CSVS
from .splitting import MIN_ROWS
from .targets import TASKS

__all__ = [
    "BUILTIN_DATASETS",
    "BUNDLED_CSVS",
    "TASKS",
    "MIN_ROWS",
    "MISSING_CATEGORY",
    "STORED",
    "Dataset",
    "InMemoryData",
    "Preprocessor",
    "in_memory_data",
    "load_dataset",
    "reload_dataset",
    "stored_data",
]
