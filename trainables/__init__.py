"""Ray Tune trainables: data, the paper's methods, one training loop, and the trial."""
