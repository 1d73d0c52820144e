import numpy as np
from sklearn.model_selection import train_test_split

from stages.split import split_indices


def test_study_split_sizes():
    train, val = split_indices(60_000, 0.2, 42)
    assert (len(train), len(val)) == (48_000, 12_000)
    assert len(np.union1d(train, val)) == 60_000 and len(np.intersect1d(train, val)) == 0


def test_same_rows_as_splitting_the_arrays():
    x = np.random.default_rng(0).random((1000, 3))
    y = np.arange(1000)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=42)
    train, val = split_indices(1000, 0.2, 42)
    np.testing.assert_array_equal(x[train], x_train)
    np.testing.assert_array_equal(y[val], y_val)


def test_seed_decides_the_split():
    np.testing.assert_array_equal(split_indices(500, 0.2, 7)[1], split_indices(500, 0.2, 7)[1])
    assert not np.array_equal(split_indices(500, 0.2, 7)[1], split_indices(500, 0.2, 8)[1])
