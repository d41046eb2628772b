import pytest

from core.labels import NUM_CLASSES, Age, Gender, Mask, age_group, decode_class, encode_class


def test_class_code_is_the_competitions():
    assert encode_class(Mask.WEAR, Gender.MALE, Age.UNDER_30) == 0
    assert encode_class(Mask.INCORRECT, Gender.FEMALE, Age.FROM_30_TO_59) == 10
    assert encode_class(Mask.NOT_WEAR, Gender.FEMALE, Age.OVER_60) == 17


def test_every_class_round_trips():
    seen = set()
    for class_id in range(NUM_CLASSES):
        mask, gender, age = decode_class(class_id)
        assert encode_class(mask, gender, age) == class_id
        seen.add((mask, gender, age))
    assert len(seen) == NUM_CLASSES


@pytest.mark.parametrize("bad", [-1, NUM_CLASSES])
def test_out_of_range_class_is_refused(bad):
    with pytest.raises(ValueError):
        decode_class(bad)


@pytest.mark.parametrize(
    "age, group", [(0, Age.UNDER_30), (29, Age.UNDER_30), (30, Age.FROM_30_TO_59), (59, Age.FROM_30_TO_59), (60, Age.OVER_60)]
)
def test_age_groups(age, group):
    assert age_group(age) == group


def test_age_boundary_58_moves_58_and_59_into_the_oldest_group():
    assert age_group(57, old_age=58) == Age.FROM_30_TO_59
    assert age_group(58, old_age=58) == Age.OVER_60
    assert age_group(59, old_age=58) == Age.OVER_60
