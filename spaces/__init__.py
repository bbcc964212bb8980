"""What may be tuned: search spaces, their validation, their compilers and the one model builder.

Importing this package and loading a space import neither TensorFlow nor any engine: Keras,
KerasTuner, Optuna and scikit-learn are imported inside the functions that need them, so commands
that only read spaces stay fast.

The engine compilers live in submodules (``hpsearch.spaces.compile_sklearn``,
``hpsearch.spaces.compile_keras_tuner``,
``hpsearch.spaces.compile_optuna``) and are imported by the engine that needs them.
"""

from .builder import TaskInfo, build_model, target_statistics
from .errors import SpaceError
from .functions import function_reference, import_function, importable_in_other_processes
from .hyperparameters import DEFAULTS
from .model_functions import ModelInfo, check_model_function
from .objectives import direction_of, objective_names
from .params import CategoricalParam, FloatParam, IntParam, Param
from .space import (
    MODEL_KEY,
    TRAIN_KEY,
    SearchSpace,
    check_objective,
    first_point,
    function_of,
    list_presets,
    load_space,
    resolve_config,
    space_from_dict,
    user_params,
)

__all__ = [
    "DEFAULTS",
    "MODEL_KEY",
    "TRAIN_KEY",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "ModelInfo",
    "Param",
    "SearchSpace",
    "SpaceError",
    "TaskInfo",
    "build_model",
    "check_model_function",
    "target_statistics",
    "check_objective",
    "direction_of",
    "first_point",
    "function_of",
    "function_reference",
    "import_function",
    "importable_in_other_processes",
    "list_presets",
    "load_space",
    "objective_names",
    "resolve_config",
    "space_from_dict",
    "user_params",
]
