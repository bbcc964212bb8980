"""The Optuna engine: its samplers and pruners proposing, asked and told through the shared study."""
