"""Configuration without code: settings from the environment and the AWS config profile.

Everything goes through :func:`settings_from` with plain mappings; nothing here
reads or changes ``os.environ``. Caches are real ``FileCache`` objects in
temporary directories and real ``RedisCache`` objects, which do not connect
until their first command, so no Redis server is needed.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import os
import pickle
import stat
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from hypothesis import given
from hypothesis import strategies as st

import botocreds._config as config_module
from botocreds import RefreshPolicy
from botocreds._config import ConfigError, Settings, setting_names, settings_from
from botocreds._filecache import FileCache
from botocreds._rediscache import RedisCache

FIELDS = [field.name for field in dataclasses.fields(RefreshPolicy)]
FLOAT_FIELDS = [name for name in FIELDS if type(getattr(RefreshPolicy(), name)) is float]
INT_FIELDS = [name for name in FIELDS if type(getattr(RefreshPolicy(), name)) is int]
DEFAULT = RefreshPolicy()
KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
REDIS_URL = "redis://127.0.0.1:6379/0"


def env_name(field: str) -> str:
    return f"BOTOCREDS_{field.upper()}"


def profile_key(field: str) -> str:
    return f"botocreds_{field}"


def other_value(field: str, share: float = 0.5) -> Any:
    """A valid value of ``field`` (an int or a float, like its default) that is not the default."""
    default = getattr(DEFAULT, field)
    if isinstance(default, int):
        return max(1, round(default * share))
    return default * share


def failure(
    environ: dict[str, str], profile: dict[str, object] | None = None, **kwargs: Any
) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings_from(environ, profile or {}, **kwargs)
    return caught.value


def chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception chained to it, as cause or as context."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        todo += [current.__cause__, current.__context__]


def texts(error: BaseException) -> str:
    """Everything an error and its chain would show, in logs or a traceback."""
    parts = []
    for each in chain(error):
        parts += [str(each), repr(each), repr(each.args), *getattr(each, "__notes__", [])]
    return "\n".join(parts)


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# -- the list of settings -------------------------------------------------------


def test_every_refresh_policy_field_is_an_environment_setting() -> None:
    names = setting_names()
    assert [n for n in names if n.removeprefix("BOTOCREDS_").lower() in FIELDS] == [
        env_name(f) for f in FIELDS
    ]
    assert set(names) == {env_name(f) for f in FIELDS} | {
        "BOTOCREDS_CACHE",
        "BOTOCREDS_CACHE_KEY",
        "BOTOCREDS_CACHE_KEY_FILE",
        "BOTOCREDS_CACHE_PLAINTEXT",
    }


def test_every_refresh_policy_field_is_an_int_or_a_float_that_config_can_parse() -> None:
    assert sorted(FLOAT_FIELDS + INT_FIELDS) == sorted(FIELDS)
    assert INT_FIELDS == ["failure_threshold"]


def test_module_docstring_documents_every_setting_with_its_default() -> None:
    doc = config_module.__doc__ or ""
    for name in setting_names():
        assert f"``{name}``" in doc, name
    for field in FIELDS:
        default = getattr(DEFAULT, field)
        assert f"``{env_name(field)}`` / ``{profile_key(field)}`` (default {default:g})" in doc
    for key in ("botocreds_cache", "botocreds_cache_key_file", "botocreds_cache_plaintext"):
        assert f"``{key}``" in doc


def test_no_configuration_gives_the_default_policy_and_no_cache() -> None:
    assert settings_from({}, {}) == Settings(RefreshPolicy(), None)


# -- refresh timing knobs -------------------------------------------------------


@pytest.mark.parametrize("field", FIELDS)
def test_environment_variable_sets_its_policy_field(field: str) -> None:
    value = other_value(field)
    settings = settings_from({env_name(field): f"  {value}\t"}, {})
    assert settings.policy == dataclasses.replace(DEFAULT, **{field: value})
    assert type(getattr(settings.policy, field)) is type(getattr(DEFAULT, field))


@pytest.mark.parametrize("field", FIELDS)
def test_profile_key_sets_its_policy_field(field: str) -> None:
    value = other_value(field)
    settings = settings_from({}, {profile_key(field): f" {value} "}, profile_name="app")
    assert settings.policy == dataclasses.replace(DEFAULT, **{field: value})


@pytest.mark.parametrize("field", FIELDS)
def test_environment_wins_over_profile(field: str) -> None:
    from_env, from_profile = other_value(field, 0.5), other_value(field, 0.25)
    assert from_env != from_profile
    settings = settings_from(
        {env_name(field): str(from_env)}, {profile_key(field): str(from_profile)}
    )
    assert getattr(settings.policy, field) == from_env


def test_environment_and_profile_combine_knob_by_knob() -> None:
    settings = settings_from(
        {"BOTOCREDS_FLOOR": "30"}, {"botocreds_fraction": "0.5", "botocreds_floor": "90"}
    )
    assert (settings.policy.floor, settings.policy.fraction) == (30.0, 0.5)


def test_explicit_base_policy_ignores_every_configured_knob() -> None:
    base = RefreshPolicy(floor=10.0)
    settings = settings_from(
        {"BOTOCREDS_FLOOR": "30", "BOTOCREDS_FRACTION": "2"},
        {"botocreds_jitter": "not a number"},
        base_policy=base,
    )
    assert settings.policy is base


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("fraction", "2"),
        ("fraction", "0"),
        ("jitter", "1"),
        ("floor", "-1"),
        ("min_interval", "-0.5"),
        ("static_ttl", "0"),
        ("mint_timeout", "0"),
        ("failure_threshold", "0"),
        ("failure_threshold", "-3"),
    ],
)
def test_out_of_range_value_gets_refresh_policy_error_named_for_the_setting(
    field: str, text: str
) -> None:
    kind = type(getattr(DEFAULT, field))
    with pytest.raises(ValueError) as policy_error:
        dataclasses.replace(DEFAULT, **{field: kind(text)})
    from_env = failure({env_name(field): text})
    assert from_env.setting == env_name(field)
    assert str(from_env) == f"{env_name(field)}: {policy_error.value}"
    from_profile = failure({}, {profile_key(field): text}, profile_name="app")
    assert from_profile.setting == f"{profile_key(field)} (profile 'app')"
    assert str(policy_error.value) in str(from_profile)


def test_fraction_of_two_is_refused_naming_botocreds_fraction() -> None:
    error = failure({"BOTOCREDS_FRACTION": "2"})
    assert isinstance(error, ValueError)
    assert error.setting == "BOTOCREDS_FRACTION"
    assert "BOTOCREDS_FRACTION" in str(error)
    assert "(0, 1]" in str(error)


@pytest.mark.parametrize("text", ["2.5", "2.0", "2e0", "0x2", "1_0", "٣", "", "   ", "five"])
def test_integer_knob_accepts_only_whole_numbers(text: str) -> None:
    error = failure({"BOTOCREDS_FAILURE_THRESHOLD": text})
    assert error.setting == "BOTOCREDS_FAILURE_THRESHOLD"
    assert "whole number" in str(error)


@pytest.mark.parametrize("text", ["3", "+3", " 03 "])
def test_integer_knob_reads_whole_numbers(text: str) -> None:
    policy = settings_from({"BOTOCREDS_FAILURE_THRESHOLD": text}, {}).policy
    assert policy.failure_threshold == 3
    assert type(policy.failure_threshold) is int


@pytest.mark.parametrize(
    "text",
    ["", "   ", "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "30s", "1_000", "0x10", "٣"],
)
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_float_knob_refuses_what_is_not_a_finite_decimal_number(field: str, text: str) -> None:
    error = failure({env_name(field): text})
    assert error.setting == env_name(field)
    assert "number" in str(error)


@pytest.mark.parametrize("text", ["30", "30.", "30.0", "3e1", "+30", "3.0E+1", "300e-1"])
def test_float_knob_reads_decimal_numbers(text: str) -> None:
    assert settings_from({"BOTOCREDS_FLOOR": text}, {}).policy.floor == 30.0


def test_float_knob_reads_a_leading_point() -> None:
    assert settings_from({"BOTOCREDS_FRACTION": ".5"}, {}).policy.fraction == 0.5


def test_profile_setting_without_profile_name_is_named_for_the_config_file() -> None:
    error = failure({}, {"botocreds_floor": "-1"})
    assert error.setting == "botocreds_floor (AWS config profile)"


@pytest.mark.parametrize("value", [{"nested": "section"}, 30, None, ["30"]])
def test_non_text_profile_value_is_refused_without_showing_it(value: object) -> None:
    error = failure({}, {"botocreds_floor": value}, profile_name="app")
    assert error.setting == "botocreds_floor (profile 'app')"
    assert "text" in str(error)
    assert "nested" not in str(error) and "section" not in str(error)


def test_config_error_survives_pickling() -> None:
    error = failure({"BOTOCREDS_FRACTION": "2"})
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.setting, str(copy)) == (ConfigError, error.setting, str(error))


def test_bad_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError, match=r"base_policy must be a botocreds\.RefreshPolicy"):
        settings_from({}, {}, base_policy="fast")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache must be"):
        settings_from({}, {}, cache=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="environ must be a mapping"):
        settings_from([], {})  # type: ignore[arg-type]


# -- names that are no setting --------------------------------------------------


def test_misspelt_environment_variable_is_refused_listing_the_settings() -> None:
    error = failure({"BOTOCREDS_FLOR": "30"})
    assert error.setting == "BOTOCREDS_FLOR"
    assert "did you mean BOTOCREDS_FLOOR?" in str(error)
    for name in setting_names():
        assert name in str(error)


def test_misspelt_profile_key_is_refused_listing_the_settings() -> None:
    error = failure({}, {"botocreds_cache_keyfile": "/x"}, profile_name="app")
    assert error.setting == "botocreds_cache_keyfile (profile 'app')"
    assert "did you mean botocreds_cache_key_file?" in str(error)
    for field in FIELDS:
        assert profile_key(field) in str(error)


def test_misspelling_is_caught_even_when_code_passes_the_policy() -> None:
    error = failure({"BOTOCREDS_FLOR": "30"}, base_policy=RefreshPolicy())
    assert error.setting == "BOTOCREDS_FLOR"


def test_test_suite_variables_and_other_profile_settings_are_ignored() -> None:
    settings = settings_from(
        {"BOTOCREDS_TEST_FLOOR": "1", "BOTOCREDSFLOOR": "x", "AWS_PROFILE": "app"},
        {"region": "eu-west-1", "s3": {"addressing_style": "path"}, "BOTOCREDS_FLOOR": "x"},
    )
    assert settings == Settings(RefreshPolicy(), None)


def test_cache_key_in_the_profile_is_refused_without_showing_it() -> None:
    error = failure({}, {"botocreds_cache_key": KEY_A}, profile_name="app")
    assert error.setting == "botocreds_cache_key (profile 'app')"
    assert "BOTOCREDS_CACHE_KEY" in str(error)
    assert KEY_A not in texts(error)


# -- the file cache -------------------------------------------------------------


def test_file_url_gives_a_file_cache_in_that_directory(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    cache = settings_from({"BOTOCREDS_CACHE": f"file://{directory}"}, {}).cache
    assert isinstance(cache, FileCache)
    assert cache.directory == str(directory)
    assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700


def test_file_url_from_the_profile_with_escapes(tmp_path: Path) -> None:
    directory = tmp_path / "my cache"
    url = f"file://{tmp_path}/my%20cache/"
    cache = settings_from({}, {"botocreds_cache": url}, profile_name="app").cache
    assert isinstance(cache, FileCache)
    assert cache.directory == str(directory)


def test_environment_cache_wins_over_profile_cache(tmp_path: Path) -> None:
    cache = settings_from(
        {"BOTOCREDS_CACHE": f"file://{tmp_path}/env"},
        {"botocreds_cache": f"file://{tmp_path}/profile"},
    ).cache
    assert isinstance(cache, FileCache)
    assert cache.directory == str(tmp_path / "env")
    assert not (tmp_path / "profile").exists()


def test_same_file_url_gives_back_the_same_cache_object(tmp_path: Path) -> None:
    environ = {"BOTOCREDS_CACHE": f"file://{tmp_path}/shared"}
    first = settings_from(environ, {}).cache
    assert first is not None
    assert settings_from(environ, {}).cache is first
    assert settings_from({}, {"botocreds_cache": f"file://{tmp_path}/shared/"}).cache is first
    assert settings_from({"BOTOCREDS_CACHE": f"file://{tmp_path}/other"}, {}).cache is not first


def test_explicit_cache_ignores_every_cache_setting(tmp_path: Path) -> None:
    given = FileCache(tmp_path / "given")
    settings = settings_from(
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": "not a key"}, {}, cache=given
    )
    assert settings.cache is given


@pytest.mark.parametrize(
    "url",
    [
        "file://host/var/cache",
        "file://relative/dir",
        "file:relative",
        "file:///dir?mode=1",
        "file:///dir#top",
        "/var/cache/botocreds",
        "var/cache",
        "ftp://host/dir",
        "http://host",
        "",
        "   ",
    ],
)
def test_unusable_cache_url_is_refused(url: str) -> None:
    error = failure({"BOTOCREDS_CACHE": url})
    assert error.setting == "BOTOCREDS_CACHE"
    assert "file://" in str(error)


def test_bare_directory_gets_a_file_url_hint() -> None:
    error = failure({"BOTOCREDS_CACHE": "/run/botocreds"})
    assert "file:///run/botocreds" in str(error)


def test_bad_setting_is_refused_before_any_cache_is_made(tmp_path: Path) -> None:
    directory = tmp_path / "never"
    failure({"BOTOCREDS_CACHE": f"file://{directory}", "BOTOCREDS_FLOOR": "-1"})
    failure({"BOTOCREDS_CACHE": f"file://{directory}", "BOTOCREDS_CACHE_PLAINTEXT": "maybe"})
    assert not directory.exists()


def test_unsafe_directory_is_a_config_error(tmp_path: Path) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(0o777)
    error = failure({"BOTOCREDS_CACHE": f"file://{directory}"})
    assert error.setting == "BOTOCREDS_CACHE"
    assert "writable by everyone" in str(error)


@pytest.mark.parametrize("setting", ["BOTOCREDS_CACHE_KEY", "BOTOCREDS_CACHE_KEY_FILE"])
def test_key_with_a_file_cache_is_refused(tmp_path: Path, setting: str) -> None:
    value = KEY_A if setting == "BOTOCREDS_CACHE_KEY" else str(tmp_path / "key")
    error = failure({"BOTOCREDS_CACHE": f"file://{tmp_path}/c", setting: value})
    assert error.setting == setting
    assert "not encrypted" in str(error)
    assert KEY_A not in texts(error)
    assert not (tmp_path / "c").exists()


# -- the Redis cache ------------------------------------------------------------


def test_redis_url_without_a_key_is_refused() -> None:
    error = failure({"BOTOCREDS_CACHE": REDIS_URL})
    assert error.setting == "BOTOCREDS_CACHE"
    assert "BOTOCREDS_CACHE_KEY" in str(error)
    assert "BOTOCREDS_CACHE_PLAINTEXT" in str(error)


@pytest.mark.parametrize("flag", ["1", "true", "YES", "On", " yes "])
def test_plaintext_flag_gives_an_unencrypted_redis_cache(flag: str) -> None:
    cache = settings_from(
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_PLAINTEXT": flag}, {}
    ).cache
    assert isinstance(cache, RedisCache)
    assert not cache.encrypted
    assert cache.name == "RedisCache(redis://127.0.0.1:6379/0)"


def test_plaintext_flag_from_the_profile() -> None:
    cache = settings_from(
        {}, {"botocreds_cache": "rediss://cache.internal:6380/2", "botocreds_cache_plaintext": "1"}
    ).cache
    assert isinstance(cache, RedisCache)
    assert cache.name == "RedisCache(rediss://cache.internal:6380/2)"


@pytest.mark.parametrize("flag", ["0", "false", "No", "OFF"])
def test_false_plaintext_flag_still_refuses_redis_without_key(flag: str) -> None:
    error = failure({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_PLAINTEXT": flag})
    assert error.setting == "BOTOCREDS_CACHE"


def test_plaintext_flag_with_a_key_is_refused_like_the_constructor(tmp_path: Path) -> None:
    error = failure(
        {
            "BOTOCREDS_CACHE": REDIS_URL,
            "BOTOCREDS_CACHE_KEY": KEY_A,
            "BOTOCREDS_CACHE_PLAINTEXT": "1",
        }
    )
    assert error.setting == "BOTOCREDS_CACHE_PLAINTEXT, BOTOCREDS_CACHE_KEY"
    assert "not both" in str(error)
    assert KEY_A not in texts(error)
    key_file = private_file(tmp_path / "key", KEY_A + "\n")
    error = failure(
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_PLAINTEXT": "yes"},
        {"botocreds_cache_key_file": str(key_file)},
    )
    assert error.setting.startswith("BOTOCREDS_CACHE_PLAINTEXT, botocreds_cache_key_file")
    off = {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": KEY_A}
    cache = settings_from({**off, "BOTOCREDS_CACHE_PLAINTEXT": "0"}, {}).cache
    assert isinstance(cache, RedisCache) and cache.encrypted


@pytest.mark.parametrize("flag", ["2", "y", "", "enable", "truee"])
def test_other_plaintext_flag_values_are_errors(flag: str) -> None:
    error = failure({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_PLAINTEXT": flag})
    assert error.setting == "BOTOCREDS_CACHE_PLAINTEXT"
    assert "true" in str(error) and "false" in str(error)


def test_unix_socket_url_gives_a_redis_cache() -> None:
    cache = settings_from(
        {"BOTOCREDS_CACHE": "unix:///run/redis.sock?db=1", "BOTOCREDS_CACHE_KEY": KEY_A}, {}
    ).cache
    assert isinstance(cache, RedisCache)
    assert cache.name == "RedisCache(unix:///run/redis.sock?db=1)"


def writes_with(cache: object, key: str) -> bool:
    """Whether ``cache`` encrypts new entries with ``key`` (its first key)."""
    assert isinstance(cache, RedisCache)
    sealed = cache._seal("entry", b"payload")
    try:
        Fernet(key).decrypt(sealed)
    except InvalidToken:
        return False
    return True


def test_key_from_the_environment_gives_an_encrypted_redis_cache() -> None:
    cache = settings_from({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": KEY_A}, {}).cache
    assert isinstance(cache, RedisCache)
    assert cache.encrypted
    assert writes_with(cache, KEY_A)


def test_comma_separated_keys_write_with_the_first_and_read_with_all() -> None:
    cache = settings_from(
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": f" {KEY_B} , {KEY_A},"}, {}
    ).cache
    assert isinstance(cache, RedisCache)
    assert writes_with(cache, KEY_B) and not writes_with(cache, KEY_A)
    old = Fernet(KEY_A).encrypt(b"5:entry" + b"payload")
    assert cache._open("entry", old) == b"payload"


def test_key_file_gives_an_encrypted_redis_cache(tmp_path: Path) -> None:
    key_file = private_file(tmp_path / "key", f"# newest first\n\n{KEY_B}\n  {KEY_A}  \n")
    for environ, profile in [
        ({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY_FILE": str(key_file)}, {}),
        ({}, {"botocreds_cache": REDIS_URL, "botocreds_cache_key_file": str(key_file)}),
    ]:
        cache = settings_from(environ, profile).cache
        assert isinstance(cache, RedisCache)
        assert writes_with(cache, KEY_B)


def test_key_file_path_may_start_with_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    private_file(tmp_path / "key", KEY_A)
    cache = settings_from(
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY_FILE": "~/key"}, {}
    ).cache
    assert writes_with(cache, KEY_A)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o610])
def test_key_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = private_file(tmp_path / "key", KEY_A, mode)
    error = failure({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY_FILE": str(key_file)})
    assert error.setting == "BOTOCREDS_CACHE_KEY_FILE"
    assert f"{mode:04o}" in str(error) and "chmod 600" in str(error)
    assert KEY_A not in texts(error)


def test_key_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = private_file(tmp_path / "key", KEY_A)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(key_file).st_uid + 1)
    error = failure(
        {},
        {"botocreds_cache": REDIS_URL, "botocreds_cache_key_file": str(key_file)},
        profile_name="app",
    )
    assert error.setting == "botocreds_cache_key_file (profile 'app')"
    assert "owned by uid" in str(error)
    assert KEY_A not in texts(error)


def test_unreadable_or_unusable_key_files_are_config_errors(tmp_path: Path) -> None:
    cases = {
        "missing": tmp_path / "missing",
        "directory": tmp_path,
        "empty": private_file(tmp_path / "empty", "\n# no key yet\n"),
        "binary": private_file(tmp_path / "binary", "clé\n"),
        "bad line": private_file(tmp_path / "bad", f"{KEY_A}\n{KEY_B[:-2]}\n"),
    }
    for label, path in cases.items():
        error = failure({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY_FILE": str(path)})
        assert error.setting == "BOTOCREDS_CACHE_KEY_FILE", label
        assert KEY_A not in texts(error) and KEY_B[:-2] not in texts(error), label
    assert "line 2 is not a Fernet key" in str(
        failure({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY_FILE": str(cases["bad line"])})
    )


@pytest.mark.parametrize("path", ["key", "./key", ""])
def test_relative_key_file_path_is_refused(path: str) -> None:
    error = failure({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY_FILE": path})
    assert error.setting == "BOTOCREDS_CACHE_KEY_FILE"
    assert "absolute path" in str(error)


def test_key_and_key_file_both_in_the_environment_is_refused(tmp_path: Path) -> None:
    key_file = private_file(tmp_path / "key", KEY_B)
    error = failure(
        {
            "BOTOCREDS_CACHE": REDIS_URL,
            "BOTOCREDS_CACHE_KEY": KEY_A,
            "BOTOCREDS_CACHE_KEY_FILE": str(key_file),
        }
    )
    assert error.setting == "BOTOCREDS_CACHE_KEY, BOTOCREDS_CACHE_KEY_FILE"
    assert KEY_A not in texts(error) and KEY_B not in texts(error)


def test_environment_key_wins_over_the_profile_key_file(tmp_path: Path) -> None:
    never_read = tmp_path / "absent"
    cache = settings_from(
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": KEY_A},
        {"botocreds_cache_key_file": str(never_read)},
    ).cache
    assert writes_with(cache, KEY_A)


@pytest.mark.parametrize("key", ["", "  ", "not-a-key", KEY_A[:-1], f"{KEY_A},short", ","])
def test_bad_environment_key_is_refused_without_showing_it(key: str) -> None:
    error = failure({"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": key})
    assert error.setting == "BOTOCREDS_CACHE_KEY"
    assert "Fernet" in str(error)
    shown = texts(error)
    for part in key.split(","):
        assert len(part.strip()) < 5 or part.strip() not in shown


def test_key_without_a_cache_is_checked_and_otherwise_unused() -> None:
    assert settings_from({"BOTOCREDS_CACHE_KEY": KEY_A}, {}).cache is None
    assert failure({"BOTOCREDS_CACHE_KEY": "not-a-key"}).setting == "BOTOCREDS_CACHE_KEY"


def test_same_url_and_key_give_back_the_same_redis_cache(tmp_path: Path) -> None:
    keyed = {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": KEY_A}
    first = settings_from(keyed, {}).cache
    assert isinstance(first, RedisCache)
    assert settings_from(keyed, {}).cache is first
    key_file = private_file(tmp_path / "key", KEY_A + "\n")
    from_file = {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY_FILE": str(key_file)}
    assert settings_from(from_file, {}).cache is first
    others = [
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": KEY_B},
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_KEY": f"{KEY_A},{KEY_B}"},
        {"BOTOCREDS_CACHE": REDIS_URL, "BOTOCREDS_CACHE_PLAINTEXT": "1"},
        {"BOTOCREDS_CACHE": "redis://127.0.0.1:6379/1", "BOTOCREDS_CACHE_KEY": KEY_A},
    ]
    caches = [settings_from(environ, {}).cache for environ in others]
    assert all(cache is not first for cache in caches)
    assert len({id(cache) for cache in caches}) == len(caches)


def test_url_password_is_never_shown() -> None:
    error = failure({"BOTOCREDS_CACHE": "redis://:s3cretpw@cache.internal:6379/0"})
    assert "redis://***@cache.internal:6379/0" in str(error)
    assert "s3cretpw" not in texts(error)
    error = failure({"BOTOCREDS_CACHE": "rediss://alice9:s3cretpw@host/0?password=qu3rypw"})
    assert "rediss://***@host/0?***" in str(error)
    for secret in ("alice9", "s3cretpw", "qu3rypw"):
        assert secret not in texts(error)


def test_url_redis_cannot_parse_is_refused_without_its_password() -> None:
    error = failure(
        {
            "BOTOCREDS_CACHE": "redis://user:s3cretpw@host:port/0",
            "BOTOCREDS_CACHE_PLAINTEXT": "1",
        }
    )
    assert error.setting == "BOTOCREDS_CACHE"
    assert "cannot use redis://***@host:port/0" in str(error)
    assert "s3cretpw" not in texts(error)
    assert error.__cause__ is None and error.__context__ is None


MARK = "Zk\u00e9y"
passwords = st.text(string.ascii_lowercase + string.digits, min_size=12, max_size=30)
fernet_keys = st.binary(min_size=32, max_size=32).map(
    lambda b: base64.urlsafe_b64encode(b).decode()
)
key_values = st.one_of(
    st.text().map(lambda text: f"{MARK}{text}{MARK}"),
    st.lists(fernet_keys, min_size=1, max_size=3).map(",".join),
    st.tuples(fernet_keys, st.text()).map(lambda pair: f"{pair[0]},{MARK}{pair[1]}"),
)
BAD_URLS = [
    "ftp://user:{pw}@host/dir",
    "file://host/dir",
    "redis://:{pw}@host:port/0",
    "rediss://{pw}@[::1/0",
    "/not/a/url",
    "{pw}",
]


@pytest.mark.parametrize("url_form", BAD_URLS)
@given(key=key_values, password=passwords)
def test_cache_key_and_url_password_never_appear_in_an_error_or_its_chain(
    url_form: str, key: str, password: str
) -> None:
    environ = {"BOTOCREDS_CACHE": url_form.format(pw=password), "BOTOCREDS_CACHE_KEY": key}
    with pytest.raises(ConfigError) as caught:
        settings_from(environ, {})
    shown = texts(caught.value)
    assert key not in shown
    assert MARK not in shown
    assert password not in shown
    for part in key.split(","):
        assert len(part.strip()) < 12 or part.strip() not in shown


# -- effects at the edge --------------------------------------------------------


def test_cache_classes_are_imported_only_when_a_cache_is_made() -> None:
    tree = ast.parse(Path(config_module.__file__).read_text(encoding="utf-8"))
    top_level = [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)] + [
        alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names
    ]
    assert not [
        name
        for name in top_level
        if name.lstrip(".") in ("_filecache", "_safedir", "_rediscache", "redis", "cryptography")
    ]
    assert "_filecache" in {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node not in tree.body
    }
