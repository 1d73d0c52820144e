"""metrics/*.json at a stated precision (stages/data.py, `rounded`): far above float noise, below any
real change. The end-to-end check, two kernel paths giving the same bytes, is in test_report.py."""

import json

from stages.data import ACCURACY_DECIMALS, LOSS_DIGITS, rounded, write_json


def test_metrics_files_keep_every_count_of_an_accuracy_and_five_significant_digits_of_a_loss(tmp_path):
    report = {"val": {"loss": 0.4444442689418793, "accuracy": 10150 / 12000,
                      "per_class_accuracy": {"Bag": 1.0, "Shirt": 0.061855670103092786, "Coat": None}},
              "accuracy": {"mean": 0.8187999999999999, "folds": [0.8153333333333334, 0.82]},
              "keras_train_loss": 0.42911723256111145, "samples": 12000}
    expected = {"val": {"loss": 0.44444, "accuracy": 0.845833,
                        "per_class_accuracy": {"Bag": 1.0, "Shirt": 0.061856, "Coat": None}},
                "accuracy": {"mean": 0.8188, "folds": [0.815333, 0.82]},
                "keras_train_loss": 0.42912, "samples": 12000}
    assert (ACCURACY_DECIMALS, LOSS_DIGITS) == (6, 5)
    assert rounded(report) == expected and rounded(expected) == expected  # summary rounds them again
    write_json(tmp_path / "m.json", report)
    assert json.loads((tmp_path / "m.json").read_text()) == expected


def test_one_sample_more_or_less_shows_float_noise_does_not():
    n = 60_000  # the largest set of the study
    for k in (1, 30_000, 59_999):
        assert rounded({"accuracy": k / n}) != rounded({"accuracy": (k + 1) / n})
    # The two kernel paths' training losses measured here (tests/test_report.py): equal once rounded.
    assert rounded({"loss": 1.118208885192871}) == rounded({"loss": 1.1182087659835815})
    assert rounded({"loss": 0.42911723256111145}) == rounded({"loss": 0.42911714})  # issue 18's two CPUs
