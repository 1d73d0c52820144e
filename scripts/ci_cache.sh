#!/bin/sh
# CI's use of the shared store: `pull` before the pipeline, `push` after it on main.
# Without credentials (AWS_ACCESS_KEY_ID unset: no repository secrets, or a fork's pull request)
# it does nothing and the pipeline runs from scratch as before.
#   scripts/ci_cache.sh repro   restore from the store what it has, run only what a change touches
#   scripts/ci_cache.sh push    send outputs, run records and their objects to the store
set -eu
case "${1:-}" in
    repro|push) ;;
    *) echo "usage: scripts/ci_cache.sh repro|push" >&2; exit 2 ;;
esac
if [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then
    echo "ci_cache: no store credentials; running without the shared store" >&2
    [ "$1" = repro ] && exec dvc repro
    exit 0
fi
case "$1" in
    # What the store has of dvc.lock (missing: a stage this change touches), then the run:
    # `repro --pull` fetches the run records itself and restores a stage whose record it finds.
    repro) dvc pull --allow-missing && dvc repro --pull ;;
    push) dvc push --run-cache ;;
esac
