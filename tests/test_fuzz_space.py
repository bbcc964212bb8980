"""Property-based fuzzing of the space loader: any document gives a valid space or one clear SpaceError.

A clear error is an instance of the project's error types with ``exit_code == 2``, one line, of bounded
length (no message may grow with the input). Anything else (a TypeError, an OverflowError, a
RecursionError, a message quoting a megabyte) is a bug in ``spaces``. The runs are derandomized: the same
inputs every time, a few seconds each.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hpsearch.spaces import SearchSpace, SpaceError, load_space, space_from_dict
from hpsearch.spaces.hyperparameters import KNOBS
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

#: A message longer than this grows with the input (the longest real one lists the accepted names).
MAX_MESSAGE = 2000
FUZZ = settings(derandomize=True, database=None, max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_weird_numbers = st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 1e308, -1e308, 5e-324, 10**30,
                                  -(10**30), 10**400, 2**63, 0.1, 1e-4])
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    _weird_numbers, st.text(max_size=30),
    st.sampled_from(["relu", "adam", "l2(0.01)", "sgd(momentum=0.9)", "1e-3", "  7 ", "0x10", "nan",
                     "inf", "true", "(", "a" * 300, "x\ny", "variance_scaling(scale=2.0)", "9" * 500]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
_names = st.one_of(st.sampled_from(sorted(KNOBS)), st.text(max_size=12), st.integers(), st.booleans())
_spec_keys = st.sampled_from(["type", "low", "high", "step", "log", "grid", "choices", "lo", "typ"])
_types = st.sampled_from(["int", "float", "categorical", "bool", None, 3])
_param_specs = st.one_of(
    _values,
    st.fixed_dictionaries({"type": _types}, optional={"low": _values, "high": _values, "step": _values,
                                                     "log": _values, "grid": _values, "choices": _values}),
    st.fixed_dictionaries({"type": st.just("int"), "low": st.integers(-5, 10**13),
                           "high": st.integers(-5, 10**13)}, optional={"step": st.integers(-2, 10**6)}),
    st.fixed_dictionaries({"type": st.just("float"), "low": _weird_numbers | st.floats(),
                           "high": _weird_numbers | st.floats()},
                          optional={"step": _weird_numbers | st.floats(), "log": st.booleans()}),
    st.dictionaries(_spec_keys, _values, max_size=5),
)
_documents = st.one_of(
    _values,
    st.fixed_dictionaries({}, optional={
        "task": st.one_of(st.sampled_from(["auto", "binary", "multiclass", "regression"]), _values),
        "objective": st.one_of(st.sampled_from(["val_loss", "val_accuracy", "mae"]), _values),
        "params": st.one_of(st.dictionaries(_names, _param_specs, max_size=4), _values),
        "fixed": st.one_of(st.dictionaries(_names, _values, max_size=4), _values),
        "extra": _values,
    }),
)


# Near-valid spaces: real parameter names with specs of the right shape and edge-case values, so the
# fuzzing reaches the checks behind the first one (domains, steps, grids, log, the grid count).
_edge_ints = st.one_of(st.integers(-3, 300), st.sampled_from([0, 1, 10**6, 10**12, 2**63, 10**400]))
_edge_floats = st.one_of(st.floats(-2, 2), _weird_numbers, st.sampled_from(["1e-3", "0.5", "1e999"]))
_spec_strings = st.sampled_from(["relu", "elu", "he_normal", "l2(0.01)", "l1_l2(l1=0.01, l2=0.01)",
                                 "adam", "sgd(momentum=0.9, nesterov=true)", "clipnorm(1.0)", "none",
                                 "step(drop=0.1, every=10)", "cosine(epochs=20, alpha=0.0)", "max_norm(1.0)",
                                 "adam(clipnorm=1.0, clipvalue=1.0)", "relu(", "l2(x=1)", "Relu"])


def _numeric_spec(kind: str) -> st.SearchStrategy:
    number = _edge_ints if kind == "int" else _edge_floats
    return st.fixed_dictionaries(
        {"type": st.sampled_from([kind, kind, "categorical"])},
        optional={"low": number, "high": number, "step": number, "log": st.booleans(),
                  "grid": st.lists(number, max_size=4),
                  "choices": st.lists(number | _spec_strings, max_size=4)},
    )


def _plausible_spec(name: str) -> st.SearchStrategy:
    kind = KNOBS[name].kind
    if kind in ("int", "float"):
        return _numeric_spec(kind)
    choices = st.lists(st.booleans(), min_size=1, max_size=3) if kind == "bool" else st.lists(
        _spec_strings, min_size=1, max_size=4)
    return st.fixed_dictionaries({"type": st.just("categorical"), "choices": choices})


def _plausible_fixed(name: str) -> st.SearchStrategy:
    kind = KNOBS[name].kind
    if kind == "int":
        return _edge_ints
    if kind == "float":
        return _edge_floats
    return st.booleans() if kind == "bool" else _spec_strings


_knob_names = st.sampled_from(sorted(KNOBS))
_plausible_documents = st.fixed_dictionaries(
    {"params": st.lists(_knob_names, max_size=4, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({name: _plausible_spec(name) for name in names})),
     "fixed": st.lists(_knob_names, max_size=3, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({name: _plausible_fixed(name) for name in names}))},
    optional={"task": st.sampled_from(["auto", "binary", "multiclass", "regression"]),
              "objective": st.sampled_from(["val_loss", "val_accuracy", "val_mae", "val_auc", "loss"])},
)


def _clear(error: BaseException) -> None:
    """``error`` is one of ours, exit 2, one line, bounded."""
    assert isinstance(error, SpaceError), f"unexpected {type(error).__name__}: {error}"
    assert error.exit_code == 2
    message = str(error)
    assert message and "\n" not in message, message
    assert len(message) <= MAX_MESSAGE, len(message)
    event("clear error")


def _valid(space: SearchSpace) -> None:
    """A space that loaded must be usable: its identity is JSON, its grid counted or refused clearly."""
    event(f"valid space with {len(space.params)} tuned and {len(space.fixed)} fixed")
    json.dumps(space.to_dict(), allow_nan=False)
    assert space_from_dict(space.to_dict(), space.source) == space
    try:
        size = space.grid_size()
    except SpaceError as error:
        _clear(error)
    else:
        assert size >= 1


def _load(document: Any) -> None:
    try:
        space = space_from_dict(document, "fuzz.yaml")
    except Exception as error:  # noqa: BLE001 - the property: nothing but a clear SpaceError
        _clear(error)
    else:
        _valid(space)


@FUZZ
@given(_documents)
# What the fuzzing found in the original loader, kept as fixed examples (each raised an unexpected error).
@example({"params": {"learning_rate": {"type": "float", "low": 10**400, "high": 10**401}}})  # OverflowError
@example({"params": {"learning_rate": {"type": "float", "low": -1e308, "high": 1e308, "step": 1e-300}}})
@example({"fixed": {"epochs": "9" * 400}})  # OverflowError: the text read as float('inf'), then int()
@example({"fixed": {5: 3}})  # TypeError from difflib, suggesting a name for a non-string key
def test_any_document_gives_a_space_or_one_clear_error(document):
    _load(document)


@FUZZ
@given(_plausible_documents)
def test_near_valid_spaces_give_a_space_or_one_clear_error(document):
    _load(document)


_DIR = Path(tempfile.mkdtemp(prefix="hpsearch-fuzz-space-"))


def _load_file(text: str | bytes, suffix: str) -> None:
    path = _DIR / f"space{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        space = load_space(path)
    except Exception as error:  # noqa: BLE001
        _clear(error)
    else:
        _valid(space)


def _yaml_text(document: Any) -> str | None:
    try:
        return yaml.safe_dump(document, allow_unicode=True)
    except (yaml.YAMLError, ValueError, TypeError):
        return None


@FUZZ
@given(_documents | _plausible_documents)
def test_any_yaml_file_gives_a_space_or_one_clear_error(document):
    text = _yaml_text(document)
    if text is not None:
        _load_file(text, ".yaml")


@FUZZ
@given(_documents | _plausible_documents)
def test_any_json_file_gives_a_space_or_one_clear_error(document):
    try:
        text = json.dumps(document)
    except (TypeError, ValueError):
        return
    _load_file(text, ".json")


# Fragments YAML gives meaning to: anchors, aliases, merges, tags, flow and block markers, quotes.
_yaml_fragments = st.sampled_from([
    "params:", "fixed:", "task: ", "objective: ", "  ", "    ", "\n", "- ", ": ", "{", "}", "[", "]", ", ",
    "&a ", "*a", "&b ", "*b", "<<: *a", "!!python/object:os.system", "!!binary ", "!!set ", "!!timestamp ",
    "? ", "'", '"', "#", "|", ">", "epochs", "dropout", "type: int", "low: 1", "high: 1.0e400",
    "step: 0", "choices: [", "n_neurons", "2001-13-45", "0b101", "0x1F", "1_000", ".nan", ".inf", "~",
    "9" * 40, "\t", "\ufeff", "\x00", "%YAML 1.1\n", "---\n", "...\n",
])


@FUZZ
@given(st.lists(_yaml_fragments, max_size=40).map("".join))
@example("fixed:\n  epochs: !!timestamp x\n")  # AttributeError inside PyYAML's constructor
@example("\x00")  # a two-line message (PyYAML's reader adds a line with the position)
def test_any_yaml_like_text_gives_a_space_or_one_clear_error(text):
    _load_file(text, ".yaml")


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_give_a_space_or_one_clear_error(data):
    _load_file(data, ".yaml")
    _load_file(data, ".json")
