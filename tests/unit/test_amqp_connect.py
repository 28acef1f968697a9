"""Broker URLs of a cluster: parsing, the order nodes are tried in, the failover count, the
quorum group size, and what `gateway status` reads (no broker needed)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from pika.exceptions import AMQPConnectionError, AMQPError

from gateway.adapters import amqp_connect, topology
from gateway.adapters.amqp_connect import Links, broker_urls, node_of, parameters, read_links
from gateway.adapters.prometheus_state import LinksCollector
from gateway.config import load_settings
from gateway.errors import ConfigError

URLS = [
    "amqp://guest:guest@127.0.0.1:5701/%2F",
    "amqp://guest:guest@127.0.0.1:5702/%2F",
    "amqp://guest:guest@127.0.0.1:5703/%2F",
]


def test_several_urls_comma_separated_or_listed() -> None:
    """A comma-separated setting and a list give the same nodes; blanks are ignored."""
    assert broker_urls(" , ".join(URLS) + ",") == URLS
    assert broker_urls(URLS) == URLS
    assert [node_of(u) for u in URLS] == ["127.0.0.1:5701", "127.0.0.1:5702", "127.0.0.1:5703"]
    assert node_of("amqps://h.example") == "h.example:5671"


@pytest.mark.parametrize("value", ["", " , ", "http://127.0.0.1:5672/"])
def test_a_setting_naming_no_broker_is_refused(value: str) -> None:
    """No URL, or one that is not amqp(s), is a configuration error naming it."""
    with pytest.raises(ConfigError, match="amqp_url"):
        broker_urls(value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("amqp://guest:guest@127.0.0.1:notaport/%2F", "Port could not be cast to integer"),
        ("amqp://guest:guest@127.0.0.1:99999/%2F", "Port out of range 0-65535"),
        ("amqp://[::1", "Invalid IPv6 URL"),
        ("notaurl", "notaurl is not an amqp:// or amqps:// URL"),
    ],
)
def test_a_url_that_cannot_be_read_is_refused(value: str, named: str) -> None:
    """A port that is not one, or an unclosed IPv6 address: a configuration error naming the
    URL (its password masked), not a ValueError from inside a command."""
    with pytest.raises(ConfigError, match="amqp_url") as refused:
        broker_urls(value)
    assert named in str(refused.value)
    assert "guest:guest" not in str(refused.value)


def test_timeouts_default_unless_the_url_sets_them() -> None:
    """10 s heartbeats and short per-node timeouts, unless the URL's query says otherwise."""
    params = parameters(URLS[0], "gateway:test")
    assert params.heartbeat == amqp_connect.HEARTBEAT == 10
    assert params.socket_timeout == 3.0 and params.stack_timeout == 6.0
    assert params.connection_attempts == 1
    assert params.blocked_connection_timeout == 60.0
    assert params.client_properties == {"connection_name": "gateway:test"}
    assert parameters(URLS[0] + "?heartbeat=20", "x").heartbeat == 20


def test_a_worker_tries_the_node_after_the_one_it_lost_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After losing node 2, a worker tries 3, then 1, then 2 again."""
    links = Links()
    monkeypatch.setattr(amqp_connect, "LINKS", links)
    links.connected("intake", "127.0.0.1:5702")
    order = amqp_connect._order(URLS, "intake")
    assert order == [URLS[2], URLS[0], URLS[1]]
    assert amqp_connect._order(URLS[:1], "intake") == URLS[:1]


def test_failovers_count_moves_to_another_node_only() -> None:
    """A reconnect to the same node is a reconnect; to another node, a failover too."""
    links = Links()
    assert links.connected("relay", "n1:5672") is False
    links.lost("relay")
    assert links.connected("relay", "n1:5672") is False
    links.lost("relay")
    assert links.snapshot()[0].connected is False
    assert links.connected("relay", "n2:5672") is True
    (link,) = links.snapshot()
    assert (link.node, link.reconnects, link.failovers, link.connected) == ("n2:5672", 2, 1, True)
    families = {f.name: f for f in LinksCollector(links).collect()}
    (sample,) = families["kbnn_gateway_broker_connection"].samples
    assert sample.labels == {"worker": "relay", "node": "n2:5672"} and sample.value == 1.0
    failovers = families["kbnn_gateway_broker_failovers"].samples
    assert [(s.labels["worker"], s.value) for s in failovers] == [("relay", 1)]


def test_status_reads_the_links_of_running_processes_only(tmp_path: Path) -> None:
    """`gateway status` shows the links written by live processes; a dead one's file is
    ignored."""
    links = Links()
    written = links.keep_in(tmp_path)
    links.connected("intake", "127.0.0.1:5701")
    dead = tmp_path / "broker-links.999999999.json"
    dead.write_text(json.dumps({"pid": 999999999, "links": []}))
    (state,) = read_links(tmp_path)
    assert written.exists() and state["pid"] == os.getpid()
    Links().keep_in(tmp_path)  # the next process to start clears the dead one's file
    assert not dead.exists() and written.exists()
    assert state["links"][0]["worker"] == "intake"
    assert state["links"][0]["node"] == "127.0.0.1:5701"


def test_quorum_group_size_follows_the_nodes_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three URLs ask for three members; one URL leaves it to the broker; the setting wins."""
    (tmp_path / "conf").mkdir()
    toml = "[gateway]\namqp_url = [" + ", ".join(f'"{u}"' for u in URLS) + "]\n"
    (tmp_path / "conf" / "gateway.toml").write_text(toml)
    monkeypatch.delenv("GATEWAY_AMQP_URL", raising=False)
    monkeypatch.delenv("GATEWAY_QUORUM_INITIAL_GROUP_SIZE", raising=False)
    settings = load_settings(tmp_path)
    assert settings.amqp_urls == URLS
    assert settings.quorum_group_size == 3
    monkeypatch.setenv("GATEWAY_AMQP_URL", URLS[0])
    assert load_settings(tmp_path).quorum_group_size == 0
    monkeypatch.setenv("GATEWAY_QUORUM_INITIAL_GROUP_SIZE", "5")
    assert load_settings(tmp_path).quorum_group_size == 5


class _Recorder:
    def __init__(self) -> None:
        self.queues: dict[str, dict[str, object]] = {}

    def exchange_declare(self, *args: object, **kwargs: object) -> None:
        pass

    def queue_bind(self, *args: object, **kwargs: object) -> None:
        pass

    def queue_declare(self, name: str, durable: bool, arguments: dict[str, object]) -> None:
        self.queues[name] = arguments


def test_every_quorum_queue_gets_the_group_size_on_a_cluster() -> None:
    """Each queue, its retry queue and its parking queue ask for 3 members; on one node none."""
    channel = _Recorder()
    topology.declare(channel, ["agribank"], 5, group_size=3)
    assert channel.queues and all(
        args.get("x-quorum-initial-group-size") == 3 for args in channel.queues.values()
    )
    single = _Recorder()
    topology.declare(single, ["agribank"], 5)
    assert all("x-quorum-initial-group-size" not in a for a in single.queues.values())


def _closed_port() -> int:
    """A local port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_node_answering_within_the_wait_names_the_nodes_and_the_reason() -> None:
    """Every node refused: after the wait, one error naming each node tried, the wait and the
    socket's reason, not pika's nested wrappers; still an AMQPError for the consumers' loops."""
    ports = [_closed_port(), _closed_port()]
    urls = ",".join(f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in ports)

    with pytest.raises(amqp_connect.BrokerUnreachableError) as caught:
        amqp_connect.connect(urls, within=0.3)

    message = str(caught.value)
    assert message.startswith("no broker node accepted a connection within 0.3 s (")
    assert all(f"127.0.0.1:{port}" in message for port in ports)
    assert message.endswith("Connection refused")
    assert isinstance(caught.value, AMQPError)


def test_the_reason_under_pikas_wrappers() -> None:
    """The socket's error is found however deep pika nests it; without one, the error itself."""
    refused = ConnectionRefusedError(111, "Connection refused")
    wrapped = AMQPConnectionError(AMQPConnectionError(refused))
    assert amqp_connect.unreachable_reason(wrapped) == "Connection refused"
    other = AMQPConnectionError("x")
    assert amqp_connect.unreachable_reason(other) == repr(other)
