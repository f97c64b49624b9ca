"""Weight-sharing (one-shot) search: one supernet holds every candidate of a space, trained by
sampling a subnet per step, so candidates are scored with inherited weights instead of trained."""
