"""What each Kafka node of the local stack is told: its server.properties and its log4j2
configuration, as text. Pure: writing and running them is local_stack.kafka's part."""

from __future__ import annotations

from local_stack.settings import BrokerPaths, StackSettings

MIN_IN_SYNC_REPLICAS = 2


def broker_properties(settings: StackSettings, node: int) -> str:
    port, controller = settings.broker_port(node), settings.controller_port(node)
    replicas = settings.brokers
    in_sync = min(replicas, MIN_IN_SYNC_REPLICAS)
    lines = [
        "process.roles=broker,controller",
        f"node.id={node}",
        quorum_property(settings),
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={settings.paths.broker(node).data}",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={in_sync}",
        f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={in_sync}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={in_sync}",
        "unclean.leader.election.enable=false",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
    ]
    return "\n".join(lines) + "\n"


def quorum_property(settings: StackSettings) -> str:
    if settings.brokers == 1:  # a dynamic quorum of one, formatted --standalone
        return f"controller.quorum.bootstrap.servers=127.0.0.1:{settings.controller_port()}"
    return f"controller.quorum.voters={voters(settings)}"  # static: docs/adr/0011


def voters(settings: StackSettings) -> str:
    return ",".join(f"{node}@127.0.0.1:{settings.controller_port(node)}" for node in settings.nodes)


def log4j_properties(broker: BrokerPaths) -> str:
    lines = [
        "status = warn",
        "appender.file.type = RollingFile",
        "appender.file.name = file",
        f"appender.file.fileName = {broker.log}",
        f"appender.file.filePattern = {broker.log}.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 50MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = file",
    ]
    return "\n".join(lines) + "\n"
