"""DataJointDatabase and DataJointStore blocks: config only, picklable, never showing a secret."""

from __future__ import annotations

import pickle
from importlib.metadata import entry_points

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import ValidationError

from dj_flows.prefect.blocks import DataJointDatabase, DataJointStore
from dj_flows.settings import Config

PASSWORD = "pw-hunter2-db"
ACCESS = "AKIA-access-id"
SECRET = "sk-very-secret"
TOKEN = "tok-session-xyz"


def mysql_block() -> DataJointDatabase:
    return DataJointDatabase(
        backend="mysql", host="db.lab", port=3307, user="alice", password=PASSWORD, use_tls=False
    )


def s3_block() -> DataJointStore:
    return DataJointStore(
        name="shared",
        protocol="s3",
        endpoint="127.0.0.1:8333",
        bucket="pipeline",
        location="dj/shared",
        access_key=ACCESS,
        secret_key=SECRET,
        storage_options={"client_kwargs": {"region_name": "eu"}, "session_token": TOKEN},
        secret_storage_options={"token": TOKEN + "2"},
        subfolding=(2, 2),
    )


class OfflineBlockSuite(BlockStandardTestSuite):
    """Prefect's standard block checks, minus the logo check: it fetches a URL (we are offline)."""

    @pytest.mark.skip(reason="fetches the logo over the internet; dj-flows hosts no logo yet")
    def test_has_a_valid_image(self, block):
        pass


class TestDatabaseBlockStandard(OfflineBlockSuite):
    @pytest.fixture
    def block(self):
        return DataJointDatabase


class TestStoreBlockStandard(OfflineBlockSuite):
    @pytest.fixture
    def block(self):
        return DataJointStore


@pytest.mark.parametrize("make", [mysql_block, s3_block])
def test_repr_hides_secrets_and_block_pickles(make):
    block = make()
    for text in (repr(block), str(block), f"{block}", repr([block])):
        for secret in (PASSWORD, SECRET, TOKEN, ACCESS):
            assert secret not in text
    copy = pickle.loads(pickle.dumps(block))
    assert copy == block and type(copy) is type(block)


def test_database_config_values_and_apply():
    block = mysql_block()
    values = block.config_values()
    assert values == {
        "database.backend": "mysql",
        "database.host": "db.lab",
        "database.port": 3307,
        "database.user": "alice",
        "database.password": PASSWORD,
        "database.sqlite_path": "dj_flows.sqlite",
        "database.use_tls": False,
    }
    config = Config()
    assert block.apply(config) is config
    assert {key: config[key] for key in values} == values
    assert PASSWORD not in repr(config)


def test_database_applied_restores_previous_values():
    config = Config({"database.host": "before"})
    with mysql_block().applied(config):
        assert config["database.host"] == "db.lab" and config["database.password"] == PASSWORD
    assert config["database.host"] == "before" and config["database.password"] is None


def test_sqlite_default_block():
    values = DataJointDatabase(sqlite_path="/data/lab.sqlite").config_values()
    assert values["database.backend"] == "sqlite"
    assert values["database.sqlite_path"] == "/data/lab.sqlite"
    assert values["database.password"] is None
    with pytest.raises(ValidationError):
        DataJointDatabase(backend="postgres")


def test_store_specs():
    assert s3_block().store_spec() == {
        "protocol": "s3",
        "endpoint": "127.0.0.1:8333",
        "bucket": "pipeline",
        "location": "dj/shared",
        "access_key": ACCESS,
        "secret_key": SECRET,
        "secure": False,
        "subfolding": (2, 2),
        "storage_options": {
            "client_kwargs": {"region_name": "eu"},
            "session_token": TOKEN,
            "token": TOKEN + "2",
        },
    }
    local = DataJointStore(name="local", location="/data/external")
    assert local.store_spec() == {"protocol": "file", "location": "/data/external"}


def test_store_apply_adds_to_stores():
    config = Config({"stores": {"local": {"protocol": "file", "location": "/x"}}})
    s3_block().apply(config)
    assert set(config["stores"]) == {"local", "shared"}
    assert config["stores"]["shared"]["secret_key"] == SECRET
    assert SECRET not in repr(config)
    with DataJointStore(name="tmp", location="/t").applied(config):
        assert set(config["stores"]) == {"local", "shared", "tmp"}
    assert set(config["stores"]) == {"local", "shared"}


def test_store_validation():
    with pytest.raises(ValidationError, match="store name"):
        DataJointStore(name="Bad-Name", location="/x")
    with pytest.raises(ValidationError, match="needs endpoint and bucket"):
        DataJointStore(name="s", protocol="s3")
    with pytest.raises(ValidationError, match="needs a location"):
        DataJointStore(name="s", protocol="file")


def test_blocks_are_registered_by_slug():
    assert Block.get_block_class_from_key("datajoint-database") is DataJointDatabase
    assert Block.get_block_class_from_key("datajoint-store") is DataJointStore


def test_prefect_collections_entry_point():
    found = [
        ep for ep in entry_points(group="prefect.collections") if ep.value == "dj_flows.prefect"
    ]
    if not found:
        pytest.skip("dj_flows is not installed with its prefect.collections entry point yet")
    assert found[0].load().DataJointStore is DataJointStore


def test_save_and_load_round_trip(prefect_harness):
    mysql_block().save("dj-db-roundtrip", overwrite=True)
    s3_block().save("dj-store-roundtrip", overwrite=True)
    database = DataJointDatabase.load("dj-db-roundtrip")
    store = DataJointStore.load("dj-store-roundtrip")
    assert database.config_values() == mysql_block().config_values()
    assert store.store_spec() == s3_block().store_spec()
    assert pickle.loads(pickle.dumps(store)).store_spec() == store.store_spec()
    assert SECRET not in repr(store) and PASSWORD not in repr(database)
    # loading through the generic Block class finds our classes by slug
    assert type(Block.load("datajoint-store/dj-store-roundtrip")) is DataJointStore
