"""One training run: its config, the data on the device, the loop, and the run directory it writes."""
