"""Save a Keras model as a .keras file whose bytes depend on the model alone.

A .keras file is a zip archive (Keras's documented format): config.json, metadata.json and the
weights. Keras records in it when it saved (metadata.json's date_saved and every entry's
timestamp) and Python object ids (config.json's shared_object_id). Without them, the same
training writes the same bytes, so the model's hash in dvc.lock is the same on every run and
machine, and DVC's cache and run-cache recognise it.
"""

import json
import os
import re
import zipfile

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def save_model(net, path: str | os.PathLike) -> None:
    """`net.save(path)`, then rewrite the archive without save dates and with stable object ids."""
    net.save(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    ids: dict[bytes, int] = {}  # renumbered in order of appearance: the same sharing, stable names
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = re.sub(
                    rb'"shared_object_id": (\d+)',
                    lambda m: b'"shared_object_id": %d' % ids.setdefault(m[1], len(ids) + 1),
                    data,
                )
            info.date_time = FIXED_TIME
            archive.writestr(info, data)
