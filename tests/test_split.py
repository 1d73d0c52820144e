import numpy as np


def test_the_rows_train_test_split_picks_for_the_seed():
    from sklearn.model_selection import train_test_split  # imported here, not at collection

    from stages.split import split_indices

    x = np.random.default_rng(0).random((60_000, 2))
    x_train, x_val = train_test_split(x, test_size=0.2, random_state=42)
    train, val = split_indices(60_000, 0.2, 42)
    assert (len(train), len(val)) == (48_000, 12_000)
    assert len(np.union1d(train, val)) == 60_000  # every row once
    np.testing.assert_array_equal(x[train], x_train)
    np.testing.assert_array_equal(x[val], x_val)
    assert not np.array_equal(val, split_indices(60_000, 0.2, 43)[1])
