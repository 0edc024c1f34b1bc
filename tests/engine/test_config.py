"""dj.config: DataJoint 0.14's keys, layered sources, save_local, validation, and secrets that never
reach a repr, a str or a log line."""

from __future__ import annotations

import json
import logging
import pprint

import pytest

import dj_flows as dj
from dj_flows.errors import ConfigError
from dj_flows.settings import DEFAULTS, MASK, Config, SecretScrubber, _initial_config

# DataJoint 0.14.10's default keys (datajoint/settings.py) that every config must carry
DATAJOINT_KEYS = {
    "database.host": "localhost",
    "database.password": None,
    "database.user": None,
    "database.port": 3306,
    "database.reconnect": True,
    "connection.init_function": None,
    "connection.charset": "",
    "loglevel": "INFO",
    "safemode": True,
    "fetch_format": "array",
    "display.limit": 12,
    "display.width": 14,
    "display.show_tuple_count": True,
    "database.use_tls": None,
    "enable_python_native_blobs": True,
    "add_hidden_timestamp": False,
    "filepath_checksum_size_limit": None,
    "filepath_checksum_size_limit_insert": None,
}
SECRET = "s3cr3t-Pa55word"
STORE_SECRET = "AWS-secret-key-xyz"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """No DJ_* variables and an empty working folder, so only what a test sets is seen."""
    import os

    for name in list(os.environ):
        if name.startswith("DJ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_have_datajoint_keys_and_our_own():
    config = Config()
    for key, value in DATAJOINT_KEYS.items():
        assert config[key] == value, key
    assert config["database.backend"] == "sqlite"
    assert config["database.sqlite_path"]
    assert config["stores"] == {}
    assert set(DEFAULTS) <= set(config)


def test_dict_like_access():
    config = Config()
    config["display.limit"] = 5
    assert config["display.limit"] == 5 and config.get("display.limit") == 5
    assert "display.limit" in config and "no.such.key" not in config
    assert config.get("no.such.key", "fallback") == "fallback"
    del config["display.limit"]  # back to the default
    assert config["display.limit"] == 12
    config.update({"display.width": 20, "safemode": False})
    assert (config["display.width"], config["safemode"]) == (20, False)
    assert len(config) == len(list(config))
    with pytest.raises(ConfigError, match="no.such.key"):
        config["no.such.key"]


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("database.backend", "postgres", "'sqlite' or 'mysql'"),
        ("database.port", "abc", "integer"),
        ("database.port", 3.5, "integer"),
        ("safemode", "maybe", "true or false"),
        ("loglevel", "LOUD", "DEBUG"),
        ("fetch_format", "list", "'array' or 'frame'"),
        ("stores", ["not", "a", "dict"], "dict"),
        ("stores", {"Bad-Name": {"protocol": "file"}}, "store name"),
        ("stores", {"local": {"location": "/tmp"}}, "protocol"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(key, value, match):
    config = Config()
    with pytest.raises(ConfigError, match=match) as caught:
        config[key] = value
    assert key in str(caught.value) or key == "stores"


def test_values_are_coerced_from_text():
    config = Config()
    config["database.port"] = "3307"
    config["safemode"] = "no"
    config["database.use_tls"] = "true"
    config["loglevel"] = "warning"
    assert (config["database.port"], config["safemode"], config["database.use_tls"]) == (3307, False, True)
    assert config["loglevel"] == "WARNING"
    config["loglevel"] = "INFO"


def test_sources_lowest_first(clean_env, monkeypatch: pytest.MonkeyPatch):
    (clean_env / "dj_local_conf.json").write_text(
        json.dumps({"database.host": "file-host", "database.user": "file-user", "display.limit": 7})
    )
    config = _initial_config()  # defaults < file
    assert (config["database.host"], config["database.user"], config["display.limit"]) == ("file-host", "file-user", 7)
    assert config["display.width"] == 14  # untouched default

    monkeypatch.setenv("DJ_HOST", "env-host")
    monkeypatch.setenv("DJ_PASS", SECRET)
    monkeypatch.setenv("DJ_BACKEND", "mysql")
    monkeypatch.setenv("DJ_PORT", "3310")
    config = _initial_config()  # file < environment
    assert config["database.host"] == "env-host"
    assert config["database.user"] == "file-user"
    assert config["database.password"] == SECRET
    assert config["database.backend"] == "mysql"
    assert config["database.port"] == 3310

    config["database.host"] = "runtime-host"  # environment < run time
    assert config["database.host"] == "runtime-host"


def test_environment_names_of_datajoint(clean_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DJ_USER", "alice")
    monkeypatch.setenv("DJ_LOG_LEVEL", "warning")
    monkeypatch.setenv("DJ_SQLITE_PATH", str(clean_env / "p.sqlite"))
    config = _initial_config()
    assert config["database.user"] == "alice"
    assert config["loglevel"] == "WARNING"
    assert config["database.sqlite_path"] == str(clean_env / "p.sqlite")
    logging.getLogger("dj_flows").setLevel("INFO")


def test_dj_config_names_another_file(clean_env, monkeypatch: pytest.MonkeyPatch):
    other = clean_env / "elsewhere.json"
    other.write_text(json.dumps({"database.host": "other-host"}))
    (clean_env / "dj_local_conf.json").write_text(json.dumps({"database.host": "local-host"}))
    monkeypatch.setenv("DJ_CONFIG", str(other))
    assert _initial_config()["database.host"] == "other-host"


def test_bad_config_files(clean_env):
    config = Config()
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(clean_env / "missing.json")
    (clean_env / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config.load(clean_env / "broken.json")
    (clean_env / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        config.load(clean_env / "list.json")
    (clean_env / "badvalue.json").write_text(json.dumps({"database.port": "x"}))
    with pytest.raises(ConfigError, match="database.port"):
        config.load(clean_env / "badvalue.json")


def test_save_local_round_trips(clean_env):
    config = Config()
    config.update(
        {
            "database.host": "db.example.org",
            "database.password": SECRET,
            "display.limit": 3,
            "stores": {"shared": {"protocol": "s3", "endpoint": "127.0.0.1:9000", "bucket": "b",
                                  "location": "x", "access_key": "AK", "secret_key": STORE_SECRET}},
        }
    )
    config.save_local()
    saved = json.loads((clean_env / "dj_local_conf.json").read_text())
    assert saved["database.host"] == "db.example.org"
    assert saved["database.password"] == SECRET  # the file is the user's own: secrets are kept
    reloaded = _initial_config()
    assert dict(reloaded) == dict(config)


def test_override_is_temporary():
    config = dj.config
    before = (config["safemode"], config["display.limit"], config["loglevel"])
    with config(safemode=False, display__limit=2, loglevel="DEBUG"):
        assert config["safemode"] is False and config["display.limit"] == 2
        assert logging.getLogger("dj_flows").level == logging.DEBUG
    assert (config["safemode"], config["display.limit"], config["loglevel"]) == before
    assert logging.getLogger("dj_flows").level == logging.getLevelName(before[2])
    with pytest.raises(RuntimeError), config(display__limit=99):
        raise RuntimeError
    assert config["display.limit"] == before[1]


def _secret_config() -> Config:
    config = Config()
    config["database.password"] = SECRET
    config["stores"] = {
        "shared": {"protocol": "s3", "endpoint": "localhost:9000", "bucket": "b", "location": "l",
                   "access_key": "AKIA", "secret_key": STORE_SECRET},
        "local": {"protocol": "file", "location": "/data"},
    }
    return config


def test_secrets_masked_in_repr_and_str():
    config = _secret_config()
    for text in (repr(config), str(config), f"{config}", pprint.pformat(config), repr(config.masked())):
        assert SECRET not in text and STORE_SECRET not in text
        assert MASK in text
        assert "AKIA" in text and "/data" in text  # non-secrets stay visible
    # the store specs print masked too, while the real values are there for the engine to use
    for text in (repr(config["stores"]), str(config["stores"]), repr(config["stores"]["shared"]),
                 pprint.pformat(config["stores"])):
        assert STORE_SECRET not in text and MASK in text and "AKIA" in text
    assert config["database.password"] == SECRET
    assert config["stores"]["shared"]["secret_key"] == STORE_SECRET
    assert config["stores"] == {name: dict(spec) for name, spec in config["stores"].items()}
    assert json.loads(json.dumps(config["stores"]))["shared"]["secret_key"] == STORE_SECRET


def test_secrets_masked_in_global_config_repr():
    with dj.config(database__password=SECRET):
        assert SECRET not in repr(dj.config) and SECRET not in str(dj.config)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("logger_name", ["dj_flows", "dj_flows.connection", "dj_flows.stores.s3"])
def test_log_lines_scrubbed(logger_name):
    """Secrets are scrubbed from log records of the package logger and of every child logger."""
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with dj.config(database__password=SECRET, stores={"s": {"protocol": "s3", "secret_key": STORE_SECRET}}):
            logger.warning("connecting with %s and %s", SECRET, STORE_SECRET)
            logger.info(f"inline {SECRET}")
            logger.debug("dict %s", {"password": SECRET})
    finally:
        root.removeHandler(capture)
        logger.setLevel(old_level)
    assert len(capture.lines) == 3
    for line in capture.lines:
        assert SECRET not in line and STORE_SECRET not in line
        assert MASK in line


def test_scrubber_filter_on_its_own():
    config = _secret_config()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pw=%s key=%s", (SECRET, STORE_SECRET), None)
    assert SecretScrubber(config).filter(record)
    assert record.getMessage() == f"pw={MASK} key={MASK}"
