"""Which payload class a `type` string means, and how older versions are brought up to date.

Upcasters work on the raw `data` dict before validation, one version step each, so a message
written years ago still decodes into today's model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from contracts.commands import RUN_COMMANDS, STAGE_COMMANDS
from contracts.envelope import Payload
from contracts.events import RUN_EVENTS

Upcaster = Callable[[dict], dict]


class Registry:
    def __init__(self, payloads: Iterable[type[Payload]]) -> None:
        self._by_type: dict[str, type[Payload]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for cls in payloads:
            if cls.TYPE in self._by_type:
                raise ValueError(f"two payloads claim type {cls.TYPE!r}")
            self._by_type[cls.TYPE] = cls

    def payload_class(self, type_: str) -> type[Payload] | None:
        return self._by_type.get(type_)

    def types(self) -> dict[str, type[Payload]]:
        return dict(self._by_type)

    def upcaster(self, type_: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register `fn(data_at_from_version) -> data_at_from_version_plus_one`."""

        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[(type_, from_version)] = fn
            return fn

        return register

    def upcast(self, type_: str, version: int, data: dict) -> dict:
        target = self._by_type[type_].VERSION
        if version > target:
            raise ValueError(f"{type_} v{version} is newer than this reader (v{target})")
        while version < target:
            step = self._upcasters.get((type_, version))
            if step is None:
                raise ValueError(f"no upcaster for {type_} v{version}")
            data = step(data)
            version += 1
        return data


REGISTRY = Registry((*RUN_COMMANDS, *STAGE_COMMANDS, *RUN_EVENTS))
