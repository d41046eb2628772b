"""bench/candidate_rule.py's verdict: issue 16's model-choice rule, counted on the figures it reads."""
from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("torch")

from bench.candidate_rule import RuleFigures, table, verdict  # noqa: E402

BASELINE = RuleFigures(
    name="shipped.onnx", val_gender_right=2670, val_gender_n=2849, pooled_gender_right=550, pooled_gender_n=587,
    val_age_f1=0.7304, pooled_age_f1=0.8087, real_mask_right=1068, real_mask_n=1091, real_mask_f1=0.839,
    wrongly_worn_found=9, wrongly_worn_n=18, oos_mask_right=398, oos_mask_n=404,
)


def test_the_baseline_against_itself_fails_because_nothing_is_higher():
    passed, why = verdict(BASELINE, BASELINE)
    assert not passed and why == ["neither mean is higher"]


def test_one_more_face_right_with_nothing_lower_passes():
    assert verdict(replace(BASELINE, name="c", pooled_gender_right=551), BASELINE) == (True, [])
    assert verdict(replace(BASELINE, name="c", val_age_f1=0.7305), BASELINE) == (True, [])


def test_a_gain_on_one_mean_does_not_buy_a_loss_on_the_other():
    passed, why = verdict(replace(BASELINE, val_gender_right=2700, pooled_age_f1=0.80), BASELINE)
    assert not passed and len(why) == 1 and why[0].startswith("age mean")


@pytest.mark.parametrize("field", ["real_mask_right", "oos_mask_right"])
def test_a_mask_count_may_drop_by_the_slack_and_no_more(field):
    better = replace(BASELINE, val_gender_right=2680)
    assert verdict(replace(better, **{field: getattr(BASELINE, field) - 1}), BASELINE)[0]
    passed, why = verdict(replace(better, **{field: getattr(BASELINE, field) - 2}), BASELINE)
    assert not passed and len(why) == 1
    assert verdict(replace(better, **{field: getattr(BASELINE, field) - 2}), BASELINE, mask_slack=2)[0]


def test_the_table_names_the_baseline_and_each_candidates_verdict():
    report = table([BASELINE, replace(BASELINE, name="good.onnx", pooled_gender_right=560),
                    replace(BASELINE, name="bad.onnx", oos_mask_right=390)], mask_slack=1)
    assert "shipped.onnx (baseline)" in report
    assert "- good.onnx: PASSES" in report
    assert "- bad.onnx: fails: " in report and "out-of-source mask right 390 < 398 - 1" in report
