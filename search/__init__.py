"""How a search runs: data, engine adapters, the trial recorder, resume, queries and the CLI.

Heavy libraries (TensorFlow, Keras, KerasTuner, Optuna, scikit-learn) are imported inside the functions
that need them, so ``hpsearch --help`` and the query commands answer without loading TensorFlow.
"""

