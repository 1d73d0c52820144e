import hashlib

from stages.dataset import FILES
from stages.download import download


def digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_raw_data_does_not_depend_on_the_source(tmp_path, dataset, serve):
    # The Debian files and a server's files are the same payloads under different gzip headers.
    assert download([str(dataset)], tmp_path / "local") == str(dataset)
    url = serve(dataset)
    assert download(["/nonexistent", url], tmp_path / "http", retries=1, timeout=5) == url
    expected = {name: payload.sha256 for name, payload in FILES.items()}
    assert digests(tmp_path / "local") == expected
    assert digests(tmp_path / "http") == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["http", "local"]  # no temporary left
