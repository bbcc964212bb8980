"""How a search runs: data, engine adapters, the trial recorder, resume, queries and the CLI.

Heavy libraries (TensorFlow, Keras, KerasTuner, Optuna, scikit-learn) are imported inside the functions
that need them, so ``hpsearch --help`` and the query commands answer without loading TensorFlow.
"""


def _storage_beside_search() -> None:
    """Make ``import storage`` find hpsearch's own ``storage`` package on a Dask worker.

    A Dask worker puts its scratch directory first on ``sys.path``, and that directory holds a ``storage``
    folder (its spill files). When hpsearch is an editable install (found by setuptools' finder, which
    Python asks after the path entries), Python would take that folder for a namespace package named
    ``storage``. Our ``storage`` package sits beside ``search`` in every install: load it from there.
    """
    import importlib.util
    import sys
    from pathlib import Path

    if "storage" in sys.modules:
        return
    spec = importlib.util.find_spec("storage")
    if spec is None or spec.origin not in (None, "namespace"):
        return  # a regular package (ours): nothing to do
    ours = Path(__file__).resolve().parent.parent / "storage"
    if not (ours / "__init__.py").is_file():
        return
    spec = importlib.util.spec_from_file_location(
        "storage", ours / "__init__.py", submodule_search_locations=[str(ours)]
    )
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["storage"] = module
    spec.loader.exec_module(module)


_storage_beside_search()
