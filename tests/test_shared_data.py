"""tests.conftest.shared_data: a test needing ../shared skips without it, visibly, but fails under CI."""
import pytest

from tests import conftest


@pytest.fixture
def shared(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "SHARED", tmp_path)
    (tmp_path / "data" / "weights").mkdir(parents=True)
    (tmp_path / "data" / "weights" / "here.h5").write_bytes(b"x")
    return tmp_path


def _outcome(relative):
    """What shared_data raised: caught here, since a skip escaping this test would only skip it."""
    try:
        conftest.shared_data(relative)
    except BaseException as e:  # pytest's Skipped and Failed are BaseExceptions
        return e
    return None


def test_present_file_is_returned(shared, monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert conftest.shared_data("weights/here.h5") == shared / "data" / "weights" / "here.h5"


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_file_skips_outside_ci(shared, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    outcome = _outcome("weights/absent.h5")
    assert type(outcome) is pytest.skip.Exception and "weights/absent.h5" in str(outcome), repr(outcome)


@pytest.mark.parametrize("ci", ["true", "1", "True"])
def test_missing_file_fails_in_ci(shared, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    outcome = _outcome("weights/absent.h5")
    assert type(outcome) is pytest.fail.Exception and "CI is set" in str(outcome), repr(outcome)
