"""The files that make up the pipeline: what a fresh copy of the project needs to run and plot."""

PROJECT_FILES = [
    "dvc.yaml", "params.yaml", "stages", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore",
]
