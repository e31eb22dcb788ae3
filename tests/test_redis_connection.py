"""Connecting to Redis: a single server or any node of a Redis Cluster (asked at start-up, or told by
HWBOT_REDIS_MODE), TLS with a CA file, the commands about the whole database, and what every Redis or
cluster error becomes: StoreUnavailable, a 503, never a 500."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    CrossSlotTransactionError,
    MasterDownError,
    MaxConnectionsError,
    MovedError,
    ReadOnlyError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry

from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.cli import main
from bot.clock import parse_instant
from bot.errors import ConfigError, StoreError, StoreUnavailable
from bot.service import BotService
from bot.settings import load_settings
from bot.store import RoundTripCounter, SlotStore, connect, slot_redis_key
from bot.store import nodes
from bot.store.errors import redis_errors
from bot.testing.cluster import LocalCluster, LocalServer, free_ports, make_tls_files
from bot.testing.driver import ManualClock
from bot.web import create_app

SECRET = "connection-test-secret"
USER = "U" + "c" * 32


def url_of(client: redis.Redis) -> str:
    """REDIS_URL of the suite's own Redis (the embedded server's socket, or REDIS_URL)."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "named"), [
    ({"HWBOT_REDIS_MODE": "sharded"}, "HWBOT_REDIS_MODE"),
    ({"HWBOT_REDIS_MODE": "cluster"}, "HWBOT_REDIS_MODE"),  # no REDIS_URL: the embedded server is single
    ({"REDIS_URL": "unix:///tmp/redis.sock", "HWBOT_REDIS_MODE": "cluster"}, "HWBOT_REDIS_MODE"),
    ({"REDIS_URL": "rediss://127.0.0.1:6380", "HWBOT_REDIS_CA_FILE": "/nonexistent/ca.pem"}, "HWBOT_REDIS_CA_FILE"),
    ({"REDIS_URL": "redis://127.0.0.1:6379", "HWBOT_REDIS_CA_FILE": "FILE"}, "HWBOT_REDIS_CA_FILE"),  # not TLS
    ({"REDIS_URL": "rediss://127.0.0.1:6380", "HWBOT_REDIS_CERT_FILE": "FILE"}, "HWBOT_REDIS_KEY_FILE"),
    ({"REDIS_URL": "rediss://127.0.0.1:6380", "HWBOT_REDIS_KEY_FILE": "FILE"}, "HWBOT_REDIS_CERT_FILE"),
])
def test_a_bad_redis_setting_stops_start_up_naming_the_variable(monkeypatch, tmp_path, env, named):
    existing = tmp_path / "file.pem"
    existing.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.delenv("REDIS_URL", raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, str(existing) if value == "FILE" else value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"{named}: " in str(caught.value)
    result = CliRunner().invoke(main, ["worker", "--once"])  # a process stops at start-up with the same line
    assert result.exit_code == 1 and f"{named}: " in result.output


def test_the_mode_is_read_in_any_case_and_defaults_to_auto(monkeypatch):
    monkeypatch.delenv("HWBOT_REDIS_MODE", raising=False)
    assert load_settings().redis_mode == "auto"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:7000/0")
    monkeypatch.setenv("HWBOT_REDIS_MODE", " Cluster ")
    assert load_settings().redis_mode == "cluster"


# --- a single server -----------------------------------------------------------------------------


def test_a_single_server_gets_the_plain_client(redis_client):
    client = connect(load_settings(redis_url=url_of(redis_client)))
    try:
        assert isinstance(client, redis.Redis) and not isinstance(client, RedisCluster)
        assert client.set("hwbot:probe", "1") and redis_client.get("hwbot:probe") == "1"
        assert nodes.health(client) == {"redis": "single"}
    finally:
        client.close()


def test_a_server_that_cannot_be_reached_at_start_up_is_named_or_skipped_with_the_mode(monkeypatch):
    port, = free_ports(1)
    url = f"redis://127.0.0.1:{port}/0"
    with pytest.raises(StoreUnavailable) as caught:
        connect(load_settings(redis_url=url))
    assert str(caught.value).startswith("REDIS_URL: cannot reach the server") and "HWBOT_REDIS_MODE" in str(caught.value)
    monkeypatch.setenv("REDIS_URL", url)
    result = CliRunner().invoke(main, ["worker", "--once"])
    assert result.exit_code == 1 and "REDIS_URL: cannot reach the server" in result.output

    told = connect(load_settings(redis_url=url, redis_mode="single"))  # no question asked: a lazy client
    with pytest.raises(StoreUnavailable):  # ... whose first command is a store error, never a driver error
        SlotStore(told).booked_counts("noto", ["2026-11-25T10:00"])


# --- TLS -----------------------------------------------------------------------------------------


def test_rediss_with_the_ca_file_and_a_client_certificate(tmp_path, tls_files):
    with LocalServer(tmp_path, tls=tls_files, tls_clients="yes") as server:
        client = connect(load_settings(redis_url=server.url, redis_ca_file=str(tls_files.ca),
                                       redis_cert_file=str(tls_files.cert), redis_key_file=str(tls_files.key)))
        try:
            assert not isinstance(client, RedisCluster)
            assert client.set("hwbot:tls", "1") and client.get("hwbot:tls") == "1"
        finally:
            client.close()
        # Without the CA file the server's certificate is not trusted (the system's CAs did not sign it) ...
        with pytest.raises(StoreUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            connect(load_settings(redis_url=server.url, redis_cert_file=str(tls_files.cert),
                                  redis_key_file=str(tls_files.key)))
        # ... and without the client certificate this server refuses the connection.
        with pytest.raises(StoreUnavailable, match="REDIS_URL: cannot reach"):
            connect(load_settings(redis_url=server.url, redis_ca_file=str(tls_files.ca)))


def test_rediss_reaches_a_cluster_whose_nodes_speak_only_tls(tmp_path, tls_files):
    with LocalCluster(tmp_path, tls=tls_files) as cluster:
        client = connect(load_settings(redis_url=cluster.url, redis_ca_file=str(tls_files.ca)))
        try:
            assert isinstance(client, RedisCluster)
            for index in range(30):
                client.set(f"hwbot:tls:{index}", index)
            per_master = [node.dbsize() for node in nodes.primaries(client)]
            assert len(per_master) == 3 and sum(per_master) == 30 and min(per_master) > 0  # every master holds some
            assert nodes.health(client) == {"redis": "cluster", "masters": 3}
        finally:
            client.close()


# --- a cluster -----------------------------------------------------------------------------------


def test_any_node_of_a_cluster_gets_the_cluster_client(cluster):
    for node in cluster.nodes:  # masters and replicas alike
        client = connect(load_settings(redis_url=cluster.url_of(node)))
        try:
            assert isinstance(client, RedisCluster)
            client.set(f"hwbot:via:{node.port}", "1")
        finally:
            client.close()
    check = connect(load_settings(redis_url=cluster.url))
    assert check.retry.get_retries() == 1  # CLUSTER_RETRIES: README, "Running on Redis Cluster"
    assert nodes.key_count(check) == len(cluster.nodes)
    check.close()


def test_the_redis_url_node_stays_among_those_asked_for_the_topology(cluster):
    """A name for the cluster (a managed service's configuration endpoint; here `127.1`, another
    spelling of 127.0.0.1 that the cluster never lists) is kept beside the nodes the cluster lists,
    across topology refreshes, and never becomes a node commands are sent to (redis-py #3310)."""
    node = cluster.nodes[0]
    client = connect(load_settings(redis_url=f"redis://127.1:{node.port}/0"))
    try:
        for _ in range(2):
            manager = client.nodes_manager
            assert f"127.1:{node.port}" in manager.startup_nodes
            assert all(name.startswith("127.0.0.1:") for name in manager.nodes_cache)  # commands go to listed nodes
            manager.initialize()  # what a connection error or a failover makes the client do
        assert client.set("hwbot:seed", "1") and client.get("hwbot:seed") == "1"
    finally:
        client.close()


def test_the_mode_setting_is_obeyed_without_asking(cluster, tmp_path):
    told = connect(load_settings(redis_url=cluster.url, redis_mode="cluster"))
    assert isinstance(told, RedisCluster)
    told.close()
    plain = connect(load_settings(redis_url=cluster.url, redis_mode="single"))  # the operator's choice, even here
    assert not isinstance(plain, RedisCluster)
    slot = "2026-11-25T10:00"
    office = next(f"office{index}" for index in range(100)  # a slot held by another node than REDIS_URL's
                  if cluster.node_of_key(slot_redis_key(f"office{index}", slot)) != cluster.nodes[0])
    with pytest.raises(StoreError):  # MOVED: a store error, never a driver error
        SlotStore(plain).booked_counts(office, [slot])
    plain.close()
    with LocalServer(tmp_path) as single, pytest.raises(ConfigError, match="HWBOT_REDIS_MODE: cluster, but"):
        connect(load_settings(redis_url=single.url, redis_mode="cluster"))
    with pytest.raises(ConfigError, match="REDIS_URL: a Redis Cluster has only database 0"):
        connect(load_settings(redis_url=cluster.url.replace("/0", "/3"), redis_mode="cluster"))


def test_whole_database_commands_ask_every_master(cluster, redis_client):
    client = connect(load_settings(redis_url=cluster.url))
    for index in range(60):
        client.set(f"hwbot:spread:{index}", "x" * 100)
    per_master = [node.dbsize() for node in nodes.primaries(client)]
    assert sum(per_master) == 60 and max(per_master) < 60  # one node's DBSIZE would be wrong
    assert nodes.key_count(client) == 60
    assert sorted(nodes.scan(client, "hwbot:spread:*")) == sorted(f"hwbot:spread:{index}" for index in range(60))
    before = nodes.commands_run(client)
    client.get("hwbot:spread:1"), client.get("hwbot:spread:2"), client.get("hwbot:spread:3")
    assert nodes.commands_run(client) - before >= 3  # INFO commandstats of every master
    assert nodes.used_memory(client) > sum(int(node.info("memory")["used_memory"]) for node in nodes.primaries(client)[:1])
    counter = RoundTripCounter(client)
    counter.client.get("hwbot:spread:7")  # the first one also reads the topology and opens a connection
    before = counter.count
    counter.client.get("hwbot:spread:7")
    counter.client.set("hwbot:spread:7", "y")
    assert counter.count - before == 2 and client.get("hwbot:spread:7") == "y"
    nodes.flush(client)
    assert nodes.key_count(client) == 0 and list(nodes.scan(client, "*")) == []
    client.close()

    redis_client.set("hwbot:single", "1")  # the same helpers on a single server
    assert nodes.key_count(redis_client) == 1 and list(nodes.scan(redis_client, "hwbot:*")) == ["hwbot:single"]
    nodes.flush(redis_client)
    assert nodes.key_count(redis_client) == 0


def test_while_a_slot_has_no_master_the_health_check_and_the_store_answer_503(cluster, offices):
    slot = "2026-11-25T10:00"
    master = cluster.node_of_key(slot_redis_key("noto", slot))
    [replica] = cluster.replicas_of(master)
    # REDIS_URL names the very master that will die: the client knows the other nodes by then.
    settings = load_settings(redis_url=cluster.url_of(master), line_channel_secret=SECRET, line_channel_access_token="t")
    service = BotService(settings, offices=offices, clock=ManualClock(parse_instant("2026-11-20T10:00")))
    app = create_app(settings, service=service).test_client()
    assert app.get("/healthz").get_json()["masters"] == 3

    cluster.kill(master)
    answer = app.get("/healthz")
    assert answer.status_code == 503 and answer.get_json() == {"ok": False, "error": "store unavailable"}
    with pytest.raises(StoreUnavailable):
        service.bookings.booked_counts("noto", [slot])
    body = webhook_body(event_json(USER, "text", "こんにちは"))  # its conversation's slot may lie anywhere
    assert app.post("/callback", data=body, headers={"X-Line-Signature": sign(body, SECRET)},
                    content_type="application/json").status_code in (200, 503)

    cluster.wait_failover(master, replica)
    answer = app.get("/healthz")
    assert answer.status_code == 200 and answer.get_json()["masters"] == 3
    assert service.bookings.booked_counts("noto", [slot]) == {}
    cluster.revive(master)
    service.client.close()


# --- every error a 503 ---------------------------------------------------------------------------

DRIVER_ERRORS = [
    redis.ConnectionError("Connection refused"),
    redis.TimeoutError("Timeout reading from socket"),
    MaxConnectionsError("Too many connections"),
    ClusterDownError("CLUSTERDOWN The cluster is down"),
    MasterDownError("MASTERDOWN Link with MASTER is down"),
    TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    MovedError("3999 127.0.0.1:6381"),
    AskError("3999 127.0.0.1:6381"),
    ReadOnlyError("READONLY You can't write against a read only replica."),
    ClusterError("TTL exhausted."),
    SlotNotCoveredError('Slot "3999" is not covered by the cluster.'),
    RedisClusterException("Redis Cluster cannot be connected. Please provide at least one reachable node"),
    CrossSlotTransactionError("All keys involved in a cluster transaction must map to the same slot"),
]


@pytest.mark.parametrize("error", DRIVER_ERRORS, ids=lambda error: error.__class__.__name__)
def test_every_redis_and_cluster_error_is_store_unavailable(error):
    with pytest.raises(StoreUnavailable, match=f"reading: {error.__class__.__name__}$"):
        with redis_errors("reading"):
            raise error


def test_a_broken_request_is_a_store_error_but_not_unavailable():
    with pytest.raises(StoreError) as caught:
        with redis_errors("reading"):
            raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert not isinstance(caught.value, StoreUnavailable)


class _Failing(redis.Connection):
    """A connection to nowhere that raises the error under test for every command it would send."""

    error: Exception = redis.ConnectionError()

    def connect(self):
        raise self.error

    def send_packed_command(self, command, check_health=True):
        raise self.error


@pytest.mark.parametrize("error", DRIVER_ERRORS, ids=lambda error: error.__class__.__name__)
def test_the_webhook_and_the_health_check_answer_503_never_500(error, line, offices):
    failing = type("Failing", (_Failing,), {"error": error})
    client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=failing, decode_responses=True),
                         retry=Retry(NoBackoff(), 0))
    settings = load_settings(line_channel_secret=SECRET, line_channel_access_token="t", line_api_host=line.url)
    service = BotService(settings, client=client, offices=offices, clock=ManualClock(parse_instant("2026-11-20T10:00")))
    app = create_app(settings, service=service).test_client()
    body = webhook_body(event_json(USER, "text", "こんにちは"))
    answer = app.post("/callback", data=body, headers={"X-Line-Signature": sign(body, SECRET)},
                      content_type="application/json")
    assert answer.status_code == 503
    assert app.get("/healthz").status_code == 503
    assert line.requests == []  # nothing was answered for a turn that was not saved


# --- what to watch ---------------------------------------------------------------------------------


def test_store_status_shows_masters_replicas_the_outbox_backlog_and_problems(cluster, monkeypatch):
    from bot.store.outbox import Outbox

    client = connect(load_settings(redis_url=cluster.url))
    outbox = Outbox(client)
    outbox.add({"id": "status-1", "kind": "booking", "office": "noto", "summary": "s", "fields": {},
                "at": "2026-11-20T10:00:00+09:00"})
    monkeypatch.setenv("REDIS_URL", cluster.url)
    monkeypatch.setenv("HWBOT_REDIS_MIN_REPLICAS", "1")
    result = CliRunner().invoke(main, ["store", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert len(status["masters"]) == 3 and status["problems"] == []
    for master in status["masters"]:
        assert master["cluster_state"] == "ok"
        assert [replica["state"] for replica in master["replicas"]] == ["online"]
    assert sum(row["unread"] for row in status["outbox"]) == 1  # the notice no worker has read yet
    assert "outbox, 16 shard(s): 1 unread" in CliRunner().invoke(main, ["store", "status"]).output

    monkeypatch.setenv("HWBOT_REDIS_MIN_REPLICAS", "2")  # one replica each: bookings would fail
    result = CliRunner().invoke(main, ["store", "status"])
    assert result.exit_code == 1
    assert result.output.count("problem: ") == 3 and "HWBOT_REDIS_MIN_REPLICAS is 2" in result.output
    client.close()


def test_store_status_on_a_single_server(cli):
    result = cli("store", "status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert len(status["masters"]) == 1 and "cluster_state" not in status["masters"][0]
    assert status["problems"] == []
