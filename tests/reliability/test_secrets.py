"""Secrets never leak: a MySQL user with a real random password (created here, dropped at the end)
and the S3 secret key drive a pipeline with external objects, a failing make(), failed connections
and failed store access; every log line, printed line, exception message, traceback, repr and
jobs-table entry produced is searched for the secrets."""

from __future__ import annotations

import logging
import secrets
import traceback
import uuid

import numpy as np
import pymysql
import pytest

import dj_flows as dj
from dj_flows.connection import CONNECTION_KEYS
from dj_flows.errors import DataJointError
from tests.support.backends import mysql_settings, require_mysql

pytestmark = [pytest.mark.mysql, pytest.mark.s3, pytest.mark.timeout(300)]


@pytest.fixture
def mysql_user():
    require_mysql()
    admin = mysql_settings()
    root = pymysql.connect(host=admin["database.host"], port=admin["database.port"],
                           user=admin["database.user"], password=admin["database.password"])
    tag = uuid.uuid4().hex[:8]
    user, password = f"djrel_{tag}", "pw-" + secrets.token_urlsafe(18)
    prefix = f"djrel_{tag}"
    with root.cursor() as cursor:
        for host in ("%", "localhost", "127.0.0.1"):
            cursor.execute(f"CREATE USER '{user}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s",
                           (password,))
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{prefix}\\_%`.* TO '{user}'@'{host}'")
    try:
        yield user, password, prefix
    finally:
        with root.cursor() as cursor:
            cursor.execute("SELECT schema_name FROM information_schema.schemata "
                           "WHERE schema_name LIKE %s", (prefix + "%",))
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP DATABASE `{name}`")
            for host in ("%", "localhost", "127.0.0.1"):
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        root.close()


def test_no_secret_in_any_output(mysql_user, s3_server, caplog, capfd, tmp_path):
    user, password, prefix = mysql_user
    s3_secret = s3_server.secret_key
    texts: list[str] = []
    saved = {key: dj.config[key] for key in (*CONNECTION_KEYS, "stores", "safemode")}
    caplog.set_level(logging.DEBUG)
    try:
        dj.config.update({**mysql_settings(), "database.user": user, "database.password": password})
        dj.config["safemode"] = False
        dj.config["stores"] = {"vault": s3_server.store_spec(s3_server.new_bucket("sec"), "loc")}
        dj.conn().close()
        schema = dj.Schema(f"{prefix}_pipe")

        class Raw(dj.Manual):
            definition = """
            id : int
            ---
            data : blob@vault
            """

        class Cooked(dj.Computed):
            definition = """
            -> Raw
            ---
            out : blob@vault
            """

            def make(self, key):
                if key["id"] == 2:
                    raise RuntimeError("cannot cook 2")
                self.insert1(dict(key, out=(Raw & key).fetch1("data") + 1))

        schema(Raw, context={"Raw": Raw})
        schema(Cooked, context={"Raw": Raw})
        Raw.insert([{"id": i, "data": np.arange(i + 3)} for i in range(4)])
        result = Cooked.populate(reserve_jobs=True, suppress_errors=True)
        texts += [str(e) for _, e in result["error_list"]]
        texts += [str(v) for row in schema.jobs.fetch(as_dict=True) for v in row.values()]
        texts += [repr(dj.config), str(dj.config), repr(dj.conn()), repr(schema),
                  repr(schema.external), repr(schema.external["vault"]),
                  repr(schema.external["vault"].store), str(schema.external["vault"].spec),
                  repr(Raw()), Raw.describe(), repr(Cooked())]
        assert len(Cooked()) == 3

        def failure(action) -> None:
            try:
                action()
            except Exception as error:  # every failure's message and traceback are searched
                texts.append("".join(traceback.format_exception(error)))
                assert isinstance(error, DataJointError), repr(error)
            else:
                raise AssertionError("expected a failure")

        # a failed connection: right password, dead port; wrong password, right server
        failure(lambda: dj.Connection({**dj.conn().backend.settings, "database.port": 1}))
        failure(lambda: dj.Connection({**dj.conn().backend.settings,
                                       "database.password": password[::-1]}))
        # a store with a wrong secret key, and one with an unreachable endpoint
        bad = {**dj.config["stores"]["vault"], "secret_key": s3_secret[::-1]}
        dj.config["stores"] = {**dj.config["stores"], "vault2": bad,
                               "vault3": {**bad, "secret_key": s3_secret, "endpoint": "127.0.0.1:1"}}
        for store in ("vault2", "vault3"):
            Other = type(f"Other{store[-1]}", (dj.Manual,), {"definition": f"""
                id : int
                ---
                data : blob@{store}
                """})
            schema(Other)
            failure(lambda table=Other: table.insert1({"id": 1, "data": np.ones(3)}))
        try:
            from dj_flows.prefect.blocks import DataJointDatabase, DataJointStore

            database = DataJointDatabase(backend="mysql", user=user, password=password)
            store = DataJointStore(name="vault", protocol="s3", endpoint=s3_server.endpoint,
                                   bucket="b", access_key=s3_server.access_key, secret_key=s3_secret)
            texts += [repr(database), str(database), repr(store), str(store),
                      database.model_dump_json(), store.model_dump_json()]
        except ImportError:
            pass
        schema.drop(force=True)
    finally:
        for key, value in saved.items():
            dj.config[key] = value
        dj.conn().close()
    out, err = capfd.readouterr()
    texts += [out, err]
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    blob = "\n".join(texts)
    assert password in (password,) and len(blob) > 1000
    for secret in (password, password[::-1], s3_secret, s3_secret[::-1]):
        leaks = [text[max(0, text.find(secret) - 150):text.find(secret)]
                 for text in texts if secret in text]
        assert not leaks, f"a secret leaked into the output, after: {leaks[:3]}"
    print(f"RELIABILITY secrets: {len(texts)} texts, {len(caplog.records)} log records, "
          f"{len(blob)} chars searched")
