"""The architecture search: config, storage, the objective, workers, results, the reference and the report."""
