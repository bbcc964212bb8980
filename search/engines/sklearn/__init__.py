"""The scikit-learn engine: GridSearchCV and successive halving over SciKeras or direct fits."""
