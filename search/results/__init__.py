"""After the search: queries, comparisons, plots, retrain, export, model cards, predict."""
