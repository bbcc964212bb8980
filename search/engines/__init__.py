"""Engine adapters: each proposes configurations from one search library and learns their results
(``Engine.session``); the driver (:mod:`hpsearch.driver`) runs the loop and the trial runner trains."""
