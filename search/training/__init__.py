"""How one trial trains: the trial runner, the epoch loop, packs, checkpoints, recording."""
