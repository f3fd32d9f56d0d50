"""Settings: every variable parsed into its field, every refusal naming its variable,
`_FILE` variables, the TOML file, what wins over what, and secrets kept out of `repr`."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from writech.settings import SAMPLE_DATA, SECRET_FIELDS, Settings, SettingsError

# (variable, text, the field's value): every field, set through its variable.
PARSED: list[tuple[str, str, Any]] = [
    ("WRITECH_SOURCE", "kafka", "kafka"),
    ("WRITECH_INPUT_PATHS", " a.jsonl, dir/ ,,b.jsonl.gz ", ("a.jsonl", "dir/", "b.jsonl.gz")),
    ("WRITECH_KAFKA_BROKERS", "k1:9092,k2:9093", ("k1:9092", "k2:9093")),
    ("WRITECH_KAFKA_TOPICS", "events", ("events",)),
    ("WRITECH_KAFKA_DLQ_TOPIC", "", ""),
    ("WRITECH_KAFKA_STOP_AT_END", "true", True),
    ("WRITECH_KAFKA_OPTIONS", " security.protocol = SASL_SSL , sasl.password=a=b ",
     {"security.protocol": "SASL_SSL", "sasl.password": "a=b"}),
    ("WRITECH_KAFKA_OFFSET_RESET", "error", "error"),
    ("WRITECH_KAFKA_COMMIT_GROUP", "writech-lag", "writech-lag"),
    ("WRITECH_BATCH_SIZE", "500", 500),
    ("WRITECH_DATA_DIR", "/var/lib/writech", "/var/lib/writech"),
    ("WRITECH_CLICKHOUSE_URL", "https://u:p@ch:8443/db", "https://u:p@ch:8443/db"),
    ("WRITECH_MYSQL_URL", "mysql://u:p@db:3306/writech", "mysql://u:p@db:3306/writech"),
    ("WRITECH_CLICKHOUSE_PASSWORD", " spaced out ", " spaced out "),  # kept whole
    ("WRITECH_MYSQL_PASSWORD", "p#ss/w?rd@", "p#ss/w?rd@"),
    ("WRITECH_STORE_TIMEOUT", "2.5", 2.5),
    ("WRITECH_STORE_DEADLINE", "600", 600.0),
    ("WRITECH_DEAD_LETTER_TTL_DAYS", "0", 0),
    ("WRITECH_STATS_TTL_DAYS", "365", 365),
    ("WRITECH_MINUTE_STATS_TTL_DAYS", "14", 14),
    ("WRITECH_CLICKHOUSE_CLUSTER", "writech", "writech"),
    ("WRITECH_TIMEZONE", "Europe/Berlin", "Europe/Berlin"),
    ("WRITECH_RETENTION_DAYS", "30", 30),
    ("WRITECH_WINDOW_SECONDS", "86400", 86400),
    ("WRITECH_WINDOW_LATENESS", "0", 0),
    ("WRITECH_MAX_FUTURE_SKEW", "60", 60.0),
    ("WRITECH_MAX_MESSAGE_BYTES", "1024", 1024),
    ("WRITECH_SHARDS", "4096", 4096),
    ("WRITECH_FLUSH_INTERVAL", "0.25", 0.25),
    ("WRITECH_SINK_BATCH_ROWS", "1", 1),
    ("WRITECH_SERVE_ACCESS_FILE", "/etc/writech/access.toml", "/etc/writech/access.toml"),
    ("WRITECH_SERVE_ROSTER_FILE", "roster.csv", "roster.csv"),
    ("WRITECH_SERVE_RECENT_MINUTES", "120", 120),
    ("WRITECH_SERVE_REFRESH_SECONDS", "1", 1.0),
]  # fmt: skip

# (variable, text, what the refusal says after the variable's name)
REFUSED: list[tuple[str, str, str]] = [
    ("WRITECH_SOURCE", "ftp", "Invalid enum value 'ftp'"),
    ("WRITECH_KAFKA_STOP_AT_END", "maybe", "Expected `bool`"),
    ("WRITECH_KAFKA_OPTIONS", "a=1,flag", "item 2 of 2 is not key=value"),
    ("WRITECH_KAFKA_OFFSET_RESET", "latest", "Invalid enum value 'latest'"),
    ("WRITECH_BATCH_SIZE", "0", "Expected `int` >= 1"),
    ("WRITECH_BATCH_SIZE", "2.5", "Expected `int`"),
    ("WRITECH_BATCH_SIZE", "many", "Expected `int`"),
    ("WRITECH_BATCH_SIZE", "1000001", "Expected `int` <= 1000000"),
    ("WRITECH_STORE_TIMEOUT", "0", "Expected `float` > 0.0"),
    ("WRITECH_STORE_DEADLINE", "-1", "Expected `float` > 0.0"),
    ("WRITECH_DEAD_LETTER_TTL_DAYS", "-1", "Expected `int` >= 0"),
    ("WRITECH_STATS_TTL_DAYS", "a year", "Expected `int`"),
    ("WRITECH_MINUTE_STATS_TTL_DAYS", "-7", "Expected `int` >= 0"),
    ("WRITECH_TIMEZONE", "Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
    ("WRITECH_TIMEZONE", "../../etc/passwd", "unknown time zone"),
    ("WRITECH_RETENTION_DAYS", "0", "Expected `int` >= 1"),
    ("WRITECH_WINDOW_SECONDS", "0", "Expected `int` >= 1"),
    ("WRITECH_WINDOW_SECONDS", "86401", "Expected `int` <= 86400"),
    ("WRITECH_WINDOW_LATENESS", "-1", "Expected `int` >= 0"),
    ("WRITECH_MAX_FUTURE_SKEW", "nan", "Expected `float` > 0.0"),
    ("WRITECH_MAX_MESSAGE_BYTES", "0", "Expected `int` >= 1"),
    ("WRITECH_MAX_MESSAGE_BYTES", "268435457", "Expected `int` <= 268435456"),
    ("WRITECH_SHARDS", "0", "Expected `int` >= 1"),
    ("WRITECH_SHARDS", "4097", "Expected `int` <= 4096"),
    ("WRITECH_FLUSH_INTERVAL", "-0.5", "Expected `float` > 0.0"),
    ("WRITECH_SINK_BATCH_ROWS", "0", "Expected `int` >= 1"),
    ("WRITECH_SERVE_RECENT_MINUTES", "121", "Expected `int` <= 120"),
    ("WRITECH_SERVE_REFRESH_SECONDS", "0.5", "Expected `float` >= 1"),
    ("WRITECH_SERVE_REFRESH_SECONDS", "301", "Expected `float` <= 300"),
]


def field_of(variable: str) -> str:
    return variable.removeprefix("WRITECH_").lower()


def test_every_setting_is_tested_here() -> None:
    assert {field_of(variable) for variable, _, _ in PARSED} == set(Settings.__struct_fields__)


def test_no_variables_give_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(("variable", "text", "value"), PARSED, ids=[p[0] for p in PARSED])
def test_a_variable_sets_its_field(variable: str, text: str, value: Any) -> None:
    settings = Settings.from_env({variable: text})
    assert getattr(settings, field_of(variable)) == value
    assert value != getattr(Settings(), field_of(variable)), "not the default"
    others = Settings.from_env({})
    for name in Settings.__struct_fields__:
        if name != field_of(variable):
            assert getattr(settings, name) == getattr(others, name), name


@pytest.mark.parametrize(
    ("variable", "text", "complaint"), REFUSED, ids=[f"{v}={t}" for v, t, _ in REFUSED]
)
def test_a_bad_value_is_refused_naming_its_variable(
    variable: str, text: str, complaint: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: text})
    assert str(raised.value).startswith(f"{variable}: {complaint}")


def test_the_dead_letter_topic_is_not_one_that_is_read() -> None:
    """Its letters would be read again, fail again and be produced again, without end."""
    environment = {
        "WRITECH_SOURCE": "kafka",
        "WRITECH_KAFKA_TOPICS": "events-a,events-b",
        "WRITECH_KAFKA_DLQ_TOPIC": "events-b",
    }
    with pytest.raises(SettingsError, match=r"^WRITECH_KAFKA_DLQ_TOPIC: 'events-b' is also one"):
        Settings.from_env(environment)
    assert Settings.from_env(environment | {"WRITECH_KAFKA_DLQ_TOPIC": "events-dlq"})
    assert Settings.from_env(environment | {"WRITECH_SOURCE": "files"})  # not read then


@pytest.mark.parametrize(
    ("variable", "text", "said"),
    [
        ("WRITECH_KAFKA_TOPICS", "", "WRITECH_KAFKA_TOPICS names no topic to read"),
        ("WRITECH_KAFKA_TOPICS", " , ", "WRITECH_KAFKA_TOPICS names no topic to read"),
        ("WRITECH_KAFKA_TOPICS", "events,^events-.*", "'^events-.*' is not a Kafka topic name"),
        ("WRITECH_KAFKA_TOPICS", "school events", "'school events' is not a Kafka topic name"),
        ("WRITECH_KAFKA_TOPICS", "events/a", "'events/a' is not a Kafka topic name"),
        ("WRITECH_KAFKA_TOPICS", "..", "'..' is not a Kafka topic name"),
        ("WRITECH_KAFKA_TOPICS", "e" * 250, "is not a Kafka topic name"),
        ("WRITECH_KAFKA_TOPICS", "événements", "'événements' is not a Kafka topic name"),
        ("WRITECH_KAFKA_DLQ_TOPIC", "dead letters", "'dead letters' is not a Kafka topic name"),
    ],
)
def test_a_topic_no_broker_can_hold_is_refused_with_the_kafka_source(
    variable: str, text: str, said: str
) -> None:
    """Such a topic was taken, and the dataflow waited for it without end: for no topic
    without a word, for the others saying the topic was not created yet."""
    environment = {"WRITECH_SOURCE": "kafka", variable: text}
    with pytest.raises(SettingsError, match=re.escape(said)) as refused:
        Settings.from_env(environment)
    assert str(refused.value).startswith(variable)
    assert Settings.from_env(environment | {"WRITECH_SOURCE": "files"})  # not read then


def test_the_longest_topic_names_kafka_allows_are_taken() -> None:
    names = ("e" * 249, "events.school-1_a", "A.B")
    settings = Settings.from_env(
        {"WRITECH_SOURCE": "kafka", "WRITECH_KAFKA_TOPICS": ",".join(names)}
    )
    assert settings.kafka_topics == names


@pytest.mark.parametrize(
    "options", ["sasl.password=s3cr,et-tail", "sasl.password s3cret-tail", "a=1,s3cret-tail,b=2"]
)
def test_kafka_options_that_are_not_key_value_are_refused_without_showing_them(
    options: str,
) -> None:
    """The item was shown: a whole password written with a space for '=', or the part of
    one after a ',' (which splits the options)."""
    with pytest.raises(SettingsError, match=r"^WRITECH_KAFKA_OPTIONS: item \d of \d") as refused:
        Settings.from_env({"WRITECH_KAFKA_OPTIONS": options})
    assert "tail" not in str(refused.value)
    assert "[kafka_options] table of WRITECH_CONFIG" in str(refused.value)


def test_variables_of_other_programs_are_ignored() -> None:
    assert Settings.from_env({"WRITECH_NO_SUCH_SETTING": "1", "PATH": "/bin"}) == Settings()


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"unknown setting\(s\): batch_sizes"):
        Settings.from_env({}, batch_sizes=10)


def test_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"WRITECH_BATCH_SIZE": "10"}, batch_size=20)
    assert settings.batch_size == 20


# -- _FILE variables -------------------------------------------------------------


def test_a_file_variable_reads_the_value_from_the_file_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("  s3cret with spaces #?@/ \n")
    shards = tmp_path / "shards"
    shards.write_text("16\n")
    settings = Settings.from_env(
        {"WRITECH_MYSQL_PASSWORD_FILE": str(secret), "WRITECH_SHARDS_FILE": str(shards)}
    )
    assert settings.mysql_password == "s3cret with spaces #?@/"
    assert settings.shards == 16


def test_a_file_variable_wins_over_the_plain_one(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("mysql://u:from-file@db/writech")
    settings = Settings.from_env(
        {
            "WRITECH_MYSQL_URL": "mysql://u:plain@db/writech",
            "WRITECH_MYSQL_URL_FILE": str(tmp_path / "url"),
        }
    )
    assert settings.mysql_url == "mysql://u:from-file@db/writech"


def test_an_unreadable_file_is_refused_naming_the_file_variable(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"WRITECH_CLICKHOUSE_PASSWORD_FILE": str(missing)})
    assert str(raised.value) == (
        f"WRITECH_CLICKHOUSE_PASSWORD_FILE: cannot read {missing}: No such file or directory"
    )


def test_a_bad_value_in_a_file_is_refused_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "size").write_text("zero")
    with pytest.raises(SettingsError, match=r"^WRITECH_BATCH_SIZE: Expected `int`"):
        Settings.from_env({"WRITECH_BATCH_SIZE_FILE": str(tmp_path / "size")})


# -- the TOML file ----------------------------------------------------------------


def test_the_toml_file_sets_fields_in_their_own_types(tmp_path: Path) -> None:
    config = tmp_path / "writech.toml"
    config.write_text(
        'source = "kafka"\n'
        'kafka_brokers = ["k1:9092", "k2:9092"]\n'
        "batch_size = 100\n"
        "flush_interval = 0.5\n"
        "kafka_stop_at_end = true\n"
        "[kafka_options]\n"
        '"sasl.mechanism" = "PLAIN"\n'
    )
    settings = Settings.from_env({"WRITECH_CONFIG": str(config)})
    assert settings.source == "kafka"
    assert settings.kafka_brokers == ("k1:9092", "k2:9092")
    assert (settings.batch_size, settings.flush_interval) == (100, 0.5)
    assert settings.kafka_stop_at_end is True
    assert settings.kafka_options == {"sasl.mechanism": "PLAIN"}


def test_the_environment_wins_over_the_toml_file_and_overrides_over_both(tmp_path: Path) -> None:
    config = tmp_path / "writech.toml"
    config.write_text("batch_size = 100\nshards = 8\nretention_days = 3\n")
    settings = Settings.from_env(
        {"WRITECH_CONFIG": str(config), "WRITECH_SHARDS": "16", "WRITECH_RETENTION_DAYS": "5"},
        retention_days=9,
    )
    assert (settings.batch_size, settings.shards, settings.retention_days) == (100, 16, 9)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("batch_size = \n", r"^WRITECH_CONFIG: cannot read .*writech\.toml: "),
        ("batch_sise = 100\n", r"^unknown setting\(s\): batch_sise$"),
        ("batch_size = 0\n", r"^WRITECH_BATCH_SIZE: Expected `int` >= 1"),
        ("batch_size = [100]\n", r"^WRITECH_BATCH_SIZE: Expected `int`, got `array`"),
    ],
    ids=["not toml", "unknown key", "out of range", "wrong type"],
)
def test_a_bad_toml_file_is_refused(tmp_path: Path, content: str, complaint: str) -> None:
    config = tmp_path / "writech.toml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=complaint):
        Settings.from_env({"WRITECH_CONFIG": str(config)})


def test_a_missing_toml_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^WRITECH_CONFIG: cannot read .*absent\.toml"):
        Settings.from_env({"WRITECH_CONFIG": str(tmp_path / "absent.toml")})


# -- secrets ------------------------------------------------------------------------

PASSWORD = "pä55/w#rd?@"
SECRETS = {
    "WRITECH_CLICKHOUSE_URL": f"https://writech:{quote(PASSWORD, safe='')}@ch:8443/writech",
    "WRITECH_MYSQL_URL": "mysql://writech:hunter2@db:3306/writech",
    "WRITECH_CLICKHOUSE_PASSWORD": "ch-password",
    "WRITECH_MYSQL_PASSWORD": "mysql-password",
    "WRITECH_KAFKA_OPTIONS": "sasl.username=w,sasl.password=kafka-pw,oauth.client.secret=oa-secret,"
    "ssl.key.pem=-----BEGIN PRIVATE KEY----- MIIEv -----END PRIVATE KEY-----,"
    "sasl.oauthbearer.config=principal=w clientSecret=oauth-config-secret",
}
SECRET_VALUES = [
    PASSWORD, quote(PASSWORD, safe=""), "hunter2", "ch-password", "mysql-password", "kafka-pw",
    "oa-secret",
    "-----BEGIN PRIVATE KEY----- MIIEv -----END PRIVATE KEY-----",
    "principal=w clientSecret=oauth-config-secret",
]  # fmt: skip


def test_secrets_never_show_in_repr_or_str() -> None:
    settings = Settings.from_env(SECRETS | {"WRITECH_BATCH_SIZE": "77"})
    for shown in (repr(settings), str(settings), f"{settings}", f"{[settings]}"):
        for secret in SECRET_VALUES:
            assert secret not in shown
        assert "batch_size=77" in shown
        for name in SECRET_FIELDS:
            assert f"{name}='***'" in shown or f"{name}=***" in shown, name


def test_empty_secret_fields_show_as_empty() -> None:
    assert "mysql_url=''" in repr(Settings())


def test_the_settings_know_every_secret_as_written_and_decoded() -> None:
    settings = Settings.from_env(SECRETS)
    assert set(settings.secrets()) == set(SECRET_VALUES)
    assert "w" not in settings.secrets(), "a user name is no secret"


def test_the_settings_mask_their_secrets_in_any_text() -> None:
    settings = Settings.from_env(SECRETS)
    text = " ".join(f"<{secret}>" for secret in SECRET_VALUES)
    assert settings.redact(text) == " ".join("<***>" for _ in SECRET_VALUES)


# -- what the settings derive ---------------------------------------------------------


def test_derived_values() -> None:
    settings = Settings.from_env(
        {
            "WRITECH_DATA_DIR": "/data",
            "WRITECH_RETENTION_DAYS": "3",
            "WRITECH_MAX_FUTURE_SKEW": "90",
        }
    )
    assert settings.clickhouse_dir == Path("/data/clickhouse")
    assert settings.sqlite_path == Path("/data/writech.db")
    assert settings.lateness_seconds == 3 * 86400, "the retention, when no lateness is set"
    assert Settings(window_lateness=120).lateness_seconds == 120
    assert settings.tz == ZoneInfo("Asia/Shanghai")
    assert settings.future_skew == timedelta(seconds=90)
    assert settings.inputs == (str(SAMPLE_DATA),), "the bundled sample when no input is named"
    assert SAMPLE_DATA.is_file()
    assert Settings(input_paths=("a",)).inputs == ("a",)


@pytest.mark.parametrize(
    "variable",
    [
        "WRITECH_FLUSH_INTERVAL",
        "WRITECH_STORE_TIMEOUT",
        "WRITECH_STORE_DEADLINE",
        "WRITECH_MAX_FUTURE_SKEW",
    ],
)
@pytest.mark.parametrize("value", ["inf", "nan", "1e300"])
def test_a_duration_must_be_finite_and_at_most_a_year(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})
