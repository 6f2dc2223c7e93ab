"""Every Kafka topic the system uses, in one place.

Run commands and run events are keyed by site id, so one site's messages stay in order on one
partition and one orchestrator instance owns each site. Stage commands are keyed by run and
batch id, so the batches of one run spread over a stage's worker pool; each stage has its own
topic so each pool scales on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

FOREVER = "-1"
SEVEN_DAYS_MS = str(7 * 24 * 3600 * 1000)
THIRTY_DAYS_MS = str(30 * 24 * 3600 * 1000)

RUN_COMMANDS = "automation.run-commands"
RUN_EVENTS = "automation.run-events"
DEAD_LETTER = "automation.dead-letter"
STAGE_NUMBERS = (1, 2, 3, 4, 5, 6, 7)


def stage_commands(stage: int) -> str:
    """The topic that carries batch commands for one stage's worker pool."""
    if stage not in STAGE_NUMBERS:
        raise ValueError(f"stage must be 1..7, got {stage}")
    return f"automation.stage-{stage}.commands"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        RUN_COMMANDS,
        partitions=6,
        config={"retention.ms": SEVEN_DAYS_MS},
        purpose="start / pause / resume / cancel, keyed by site id",
    ),
    TopicSpec(
        RUN_EVENTS,
        partitions=6,
        # The event stream is the truth for runs: never delete it.
        config={"retention.ms": FOREVER, "retention.bytes": "-1", "max.message.bytes": "4194304"},
        purpose="run and stage events (the source of truth), keyed by site id",
    ),
    *(
        TopicSpec(
            stage_commands(n),
            partitions=6,
            config={"retention.ms": SEVEN_DAYS_MS},
            purpose=f"batch commands for stage {n}, keyed by run and batch id",
        )
        for n in STAGE_NUMBERS
    ),
    TopicSpec(
        DEAD_LETTER,
        partitions=1,
        config={"retention.ms": FOREVER},
        purpose="unreadable messages with the reason, from any consumer",
    ),
)


@dataclass(frozen=True)
class Topics:
    """Topic names under an optional namespace prefix.

    The namespace (TOPIC_NAMESPACE in every service's settings, empty by default) lets several
    independent deployments share one cluster: test sessions use a fresh one each, so their
    consumers never see each other's messages.
    """

    namespace: str = ""

    @property
    def run_commands(self) -> str:
        return self.namespace + RUN_COMMANDS

    @property
    def run_events(self) -> str:
        return self.namespace + RUN_EVENTS

    @property
    def dead_letter(self) -> str:
        return self.namespace + DEAD_LETTER

    def stage(self, stage: int) -> str:
        return self.namespace + stage_commands(stage)

    def specs(self) -> tuple[TopicSpec, ...]:
        return tuple(replace(spec, name=self.namespace + spec.name) for spec in TOPICS)
