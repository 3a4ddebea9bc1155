"""The run's time profile: nested phases counted once, the rest as ``other``, attempts add up."""

import time

import pytest

from cot_ray.profile import Profile, phase, stage


def test_nested_phases_count_each_second_once_and_the_rest_is_other(tmp_path):
    profile = Profile(tmp_path / "profile.json")
    with stage(profile, "stage IV"):
        time.sleep(0.05)  # outside every phase: other
        with phase("RL"):
            time.sleep(0.1)
            with phase("evaluation"):
                time.sleep(0.1)
            time.sleep(0.05)
    (name, row), (_, total) = profile.rows()
    assert name == "stage IV" and total == row
    assert row["RL"] == pytest.approx(0.15, abs=0.04) and row["evaluation"] == pytest.approx(0.1, abs=0.04)
    assert row["other"] == pytest.approx(0.05, abs=0.04)
    assert row["wall"] == pytest.approx(sum(v for k, v in row.items() if k != "wall"), abs=1e-6)
    assert Profile.load(profile.path).seconds == profile.seconds  # saved when the stage ended


def test_a_rerun_stage_adds_to_its_first_attempt_and_phases_outside_a_stage_count_nowhere(tmp_path):
    path = tmp_path / "profile.json"
    for _ in range(2):
        profile = Profile.load(path)
        with phase("training"):  # no stage open: not recorded
            pass
        with pytest.raises(RuntimeError), stage(profile, "stage II"):
            with phase("training"):
                time.sleep(0.02)
                raise RuntimeError("interrupted")
    seconds = Profile.load(path).seconds
    assert list(seconds) == ["stage II"] and seconds["stage II"]["training"] >= 0.04
    with pytest.raises(ValueError, match="unknown phase"), phase("lunch"):
        pass


def test_the_report_section_has_a_row_per_stage_and_a_total(tmp_path):
    profile = Profile(tmp_path / "profile.json", {"stage I": {"wall": 120.0, "training": 90.0},
                                                   "stage II eval": {"wall": 60.0, "engine start": 45.0}})
    lines = profile.markdown()
    assert lines[0] == "## Where the time went"
    rows = [line for line in lines if line.startswith("| stage I") or line.startswith("| all stages")]
    assert rows[0] == "| stage I | 2.0 | - | - | 1.5 | - | - | - | 0.5 |"
    assert rows[-1] == "| all stages | 3.0 | - | 0.8 | 1.5 | - | - | - | 0.8 |"
    assert Profile(tmp_path / "none.json").markdown() == []
