"""Validation reports every problem it finds in one run (up to a limit), each with its table, column, rows and
first row, so a user fixes a file once rather than once per problem."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from features.contract import errors
from features.contract.errors import DataError, DataProblemsError
from features.contract.schema import Tables
from features.contract.validate import validate_tables
from tests.features.contract.test_validate import tiny_frames, write_csv_folder


def _four_problems() -> dict:
    frames = tiny_frames()
    frames["customers"].loc[1, "signup_ts"] = "next tuesday"  # row 2
    frames["touchpoints"].loc[2, "channel"] = "fax"  # row 3
    frames["touchpoints"].loc[4, "amount"] = "lots"  # row 5
    frames["outreach"].loc[0, "holdout"] = "maybe"  # row 1
    return frames


def test_every_problem_is_reported_with_where_it_is() -> None:
    with pytest.raises(DataProblemsError) as info:
        validate_tables(Tables(**_four_problems()))
    err = info.value
    where = [(p.table, p.column, p.count, p.row) for p in err.problems]
    assert where == [
        ("customers", "signup_ts", 1, 2),
        ("touchpoints", "channel", 1, 3),
        ("touchpoints", "amount", 1, 5),
        ("outreach", "holdout", 1, 1),
    ]
    lines = str(err).splitlines()
    assert lines[0] == "4 problems in the data:"
    assert "customers.signup_ts" in lines[1] and "'next tuesday'" in lines[1] and "row 2" in lines[1]
    assert "touchpoints.channel" in lines[2] and "'fax'" in lines[2] and "row 3" in lines[2]
    assert "touchpoints.amount" in lines[3] and "'lots'" in lines[3] and "row 5" in lines[3]
    assert "outreach.holdout" in lines[4] and "'maybe'" in lines[4]
    assert isinstance(err, DataError) and (err.table, err.column) == ("customers", "signup_ts")  # the first one's


def test_one_problem_stays_a_plain_data_error() -> None:
    frames = tiny_frames()
    frames["touchpoints"].loc[2, "channel"] = "fax"
    with pytest.raises(DataError) as info:
        validate_tables(Tables(**frames))
    assert not isinstance(info.value, DataProblemsError)
    assert str(info.value).startswith("touchpoints.channel: 1 row with an unknown value ('fax'; first at row 3)")


def test_a_bad_value_is_reported_once_not_by_every_check_it_fails() -> None:
    frames = tiny_frames()
    frames["outreach"].loc[0, "channel"] = "web"  # unknown, and so also "missing" on a contact
    with pytest.raises(DataError) as info:
        validate_tables(Tables(**frames))
    assert not isinstance(info.value, DataProblemsError), str(info.value)


def test_reporting_stops_at_the_limit_and_says_so(monkeypatch) -> None:
    monkeypatch.setattr(errors, "MAX_PROBLEMS", 3)
    with pytest.raises(DataProblemsError) as info:
        validate_tables(Tables(**_four_problems()))
    assert len(info.value.problems) == 3 and info.value.truncated
    assert str(info.value).startswith("stopped at the first 3 problems in the data")


def test_problems_survive_pickling_and_a_source() -> None:
    import pickle

    with pytest.raises(DataProblemsError) as info:
        validate_tables(Tables(**_four_problems()), source="data/")
    err = pickle.loads(pickle.dumps(info.value))
    assert str(err) == str(info.value) and str(err).startswith("data/: 4 problems")


def test_engage_validate_lists_every_problem_and_exits_2(tmp_path) -> None:
    from training.cli import app

    folder = write_csv_folder(tmp_path / "data", _four_problems())
    result = CliRunner().invoke(app, ["validate", "--data", str(folder)])
    assert result.exit_code == 2
    err = result.stderr
    assert "4 problems in the data" in err
    for where in ("customers.signup_ts", "touchpoints.channel", "touchpoints.amount", "outreach.holdout"):
        assert where in err
    assert len(err.strip().splitlines()) == 5  # the heading and one line per problem
