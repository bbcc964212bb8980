"""Engine adapters: each drives one search library and reports every trial through the recorder."""
