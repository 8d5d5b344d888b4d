"""`.env` is validated before anything runs: missing keys, types, ranges, leaked passwords."""

from __future__ import annotations

import pytest
from cdb_common.envrules import LEAKED_PASSWORDS

from cdb_ops.errors import ConfigError
from cdb_ops.load.settings import load_settings, render_env_from_example
from cdb_ops.redact import Redactor
from tests.unit.conftest import ENV


def _load(tmp_path, text):
    p = tmp_path / ".env"
    p.write_text(text)
    return load_settings(p)


def _err(tmp_path, text) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, text)
    return exc.value


def test_valid_env_loads(tmp_path):
    s = _load(tmp_path, ENV)
    assert s.decimal("MAX_POSITION_SIZE") == 10
    assert s.get("POSTGRES_USER") == "claire"


@pytest.mark.parametrize("leaked", sorted(LEAKED_PASSWORDS))
def test_memo_passwords_are_refused_without_echoing_them(tmp_path, leaked):
    err = _err(tmp_path, ENV.replace("unit-test-password-0123456789", leaked))
    assert ".env:3" in err.message
    assert "published in the rebuild memo" in err.message
    assert leaked not in err.message and leaked not in err.remedy


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        ("MAX_DAILY_DRAWDOWN=-1", "MAX_DAILY_DRAWDOWN: -1 is too small"),
        ("MAX_DAILY_DRAWDOWN=0", "MAX_DAILY_DRAWDOWN: 0 is too small (must be above 0)"),
        ("MAX_TOTAL_EXPOSURE=150", "MAX_TOTAL_EXPOSURE: 150 is too large (at most 100)"),
        ("MAX_POSITION_SIZE=ten", "MAX_POSITION_SIZE: 'ten' is not a number"),
        ("INITIAL_CAPITAL=NaN", "INITIAL_CAPITAL: 'NaN' is not a finite number"),
        ("LOG_LEVEL=LOUD", "LOG_LEVEL: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR"),
        ("POSTGRES_USER=drop table", "POSTGRES_USER: 'drop table' is not a plain name"),
    ],
)
def test_out_of_range_and_wrong_types(tmp_path, line, expect):
    key = line.split("=")[0]
    text = "\n".join(ln for ln in ENV.splitlines() if not ln.startswith(key + "=")) + "\n" + line + "\n"
    err = _err(tmp_path, text)
    assert expect in err.message
    assert ".env:" in err.message and err.remedy


def test_missing_keys_are_all_listed(tmp_path):
    text = "\n".join(ln for ln in ENV.splitlines() if not ln.startswith(("MIN_VOLUME", "REDIS_PASSWORD")))
    err = _err(tmp_path, text)
    assert "2 problem(s)" in err.message
    assert "MIN_VOLUME is missing" in err.message and "REDIS_PASSWORD is missing" in err.message


def test_short_secret(tmp_path):
    err = _err(tmp_path, ENV.replace("unit-test-password-0123456789", "short"))
    assert "POSTGRES_PASSWORD: too short" in err.message


def test_malformed_lines(tmp_path):
    err = _err(tmp_path, ENV + "this is not a setting\nMIN_VOLUME=5\n")
    assert ".env:12: not a KEY=VALUE line" in err.message
    assert "MIN_VOLUME is set twice (first on line 10)" in err.message


def test_quotes_comments_and_export(tmp_path):
    s = _load(tmp_path, ENV.replace("LOG_LEVEL=INFO", 'export LOG_LEVEL="DEBUG"') + "# comment\nEXTRA=a # note\n")
    assert s.get("LOG_LEVEL") == "DEBUG"
    assert s.get("EXTRA") == "a"


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path / ".env")
    assert "cdb-ops init" in exc.value.remedy


def test_generated_env_has_fresh_distinct_secrets():
    example = "POSTGRES_PASSWORD=\nREDIS_PASSWORD=\nGRAFANA_PASSWORD=\nMIN_VOLUME=100000\n"
    a, b = render_env_from_example(example), render_env_from_example(example)
    assert a != b
    values = [ln.split("=", 1)[1] for ln in a.splitlines() if "PASSWORD" in ln]
    assert len(set(values)) == 3 and all(len(v) >= 32 for v in values)
    assert "MIN_VOLUME=100000" in a


def test_redactor_hides_every_secret():
    r = Redactor(["s3cret-value-1", "another-secret"])
    assert r("a s3cret-value-1 b another-secret") == "a *** b ***"
