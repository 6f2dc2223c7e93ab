"""The local stack's Kafka as one broker or a cluster of three: ports, node properties, the
quorum, the broker count a stack home was formatted for, and the topics' replication."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.topics import Topics
from local_stack.kafka import refuse_other_broker_count
from local_stack.kafka_config import broker_properties
from local_stack.processes import StackError
from local_stack.settings import StackSettings
from local_stack.topics import _new_topic, replication_factor


def settings(home: Path, brokers: int) -> StackSettings:
    return StackSettings(
        STACK_HOME=home,
        STACK_BROKERS=brokers,
        STACK_KAFKA_PORT=19092,
        KAFKA_BOOTSTRAP_SERVERS=None,  # the local brokers, whatever this shell points at
    )


def properties(settings: StackSettings, node: int) -> dict[str, str]:
    lines = broker_properties(settings, node).splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_three_brokers_take_a_client_and_a_controller_port_each(tmp_path):
    cluster = settings(tmp_path, 3)
    assert [cluster.broker_port(n) for n in cluster.nodes] == [19092, 19094, 19096]
    assert [cluster.controller_port(n) for n in cluster.nodes] == [19093, 19095, 19097]
    assert cluster.local_bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert cluster.kafka_bootstrap == cluster.local_bootstrap


def test_node_two_of_three_is_a_voter_with_its_own_ports_and_directory(tmp_path):
    node = properties(settings(tmp_path, 3), 2)
    assert node["node.id"] == "2"
    assert node["process.roles"] == "broker,controller"
    assert node["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert "controller.quorum.bootstrap.servers" not in node
    assert node["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert node["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19094"
    assert node["log.dirs"] == str(tmp_path.resolve() / "kafka-2" / "data")


def test_a_cluster_replicates_its_internal_topics_three_times_two_in_sync(tmp_path):
    node = properties(settings(tmp_path, 3), 3)
    for factor in ("default", "offsets.topic", "transaction.state.log"):
        assert node[f"{factor}.replication.factor"] == "3"
    assert node["min.insync.replicas"] == node["transaction.state.log.min.isr"] == "2"
    assert node["unclean.leader.election.enable"] == "false"


def test_a_single_broker_stays_where_and_as_it_was(tmp_path):
    alone = settings(tmp_path, 1)
    node = properties(alone, 1)
    assert alone.local_bootstrap == "127.0.0.1:19092"
    assert node["node.id"] == "1"
    assert node["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in node
    assert node["log.dirs"] == str(tmp_path.resolve() / "kafka" / "data")
    assert node["offsets.topic.replication.factor"] == node["min.insync.replicas"] == "1"


@pytest.mark.parametrize("brokers", [0, 2, 5])
def test_only_one_broker_or_three_are_offered(tmp_path, brokers):
    with pytest.raises(StackError, match=f"STACK_BROKERS={brokers}"):
        settings(tmp_path, brokers)


def formatted(home: Path, record: str | None) -> None:
    data = home / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("cluster.id=x\nnode.id=1\n")
    if record is not None:
        (home / "kafka" / "brokers").write_text(record)


def test_a_home_formatted_for_one_broker_refuses_three(tmp_path):
    formatted(tmp_path, record=None)  # a home from before the broker count was recorded
    refuse_other_broker_count(settings(tmp_path, 1))
    with pytest.raises(StackError, match=r"formatted for 1 broker.*stack reset.*STACK_HOME"):
        refuse_other_broker_count(settings(tmp_path, 3))


def test_a_home_formatted_for_three_brokers_refuses_one(tmp_path):
    formatted(tmp_path, record="3\n")
    refuse_other_broker_count(settings(tmp_path, 3))
    with pytest.raises(StackError, match="formatted for 3 broker"):
        refuse_other_broker_count(settings(tmp_path, 1))


def test_a_new_home_takes_either(tmp_path):
    refuse_other_broker_count(settings(tmp_path, 1))
    refuse_other_broker_count(settings(tmp_path, 3))


def test_topics_get_as_many_replicas_as_brokers_up_to_three(monkeypatch):
    monkeypatch.delenv("TOPIC_REPLICATION_FACTOR", raising=False)
    assert [replication_factor(n) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "2")
    assert replication_factor(3) == 2


def test_three_replicas_need_two_in_sync_one_needs_no_setting():
    spec = Topics().specs()[0]
    cluster, alone = _new_topic(spec, 3), _new_topic(spec, 1)
    assert cluster.replication_factor == 3
    assert cluster.topic_configs["min.insync.replicas"] == "2"
    assert alone.replication_factor == 1
    assert "min.insync.replicas" not in alone.topic_configs
