"""Fashion-MNIST study as a DVC pipeline: one module per stage, run as `python -m stages.<name>`."""
