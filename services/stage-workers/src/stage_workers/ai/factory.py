"""Choose the provider the settings name, and put the gate in front of it. The OpenAI adapters
are imported only when the settings name OpenAI: the SDK takes about 0.7 s of CPU to import,
which a worker on the offline provider (the demo's, the tests') would pay at every start."""

from __future__ import annotations

import hashlib

from stage_workers.ai.base import AI_FUNCTIONS, STAGE_FUNCTIONS, Provider
from stage_workers.ai.offline import OfflineProvider
from stage_workers.gate.calls import CallRules, GatedAI, Route
from stage_workers.gate.gate import Gate, Lane, Offload
from stage_workers.gate.journal import Journal
from stage_workers.gate.lane import Budget, Rules
from stage_workers.gate.store import LaneStore
from stage_workers.metrics import InstrumentedProvider, declare_models
from stage_workers.provider_batch_wait import Economy, EconomyRules
from stage_workers.settings import WorkerSettings


def make_provider(settings: WorkerSettings) -> Provider:
    if settings.ai_provider == "openai":
        from stage_workers.ai.openai_provider import OpenAIProvider

        return OpenAIProvider(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            text_model=settings.openai_text_model,
            image_model=settings.openai_image_model,
            timeout_seconds=settings.openai_timeout_seconds,
        )
    return OfflineProvider(settings.offline_latency_ms)


def lane_rules(settings: WorkerSettings) -> Rules:
    return Rules(
        # A probe lasts at most a call's timeout: past that, its worker is gone.
        probe_lease_seconds=call_timeout(settings) + 10,
        failures_to_open=settings.ai_failures_to_open,
        first_probe_seconds=settings.ai_first_probe_seconds,
        longest_probe_seconds=max(
            settings.ai_longest_probe_seconds, settings.ai_first_probe_seconds
        ),
    )


def lanes(settings: WorkerSettings, provider: Provider) -> dict[str, Lane]:
    """Each function's lane: provider, endpoint, model and a fingerprint of the key (budgets
    belong to an API key; the key itself is never stored)."""
    return {
        function: lane(
            settings, provider, function, settings.openai_base_url, settings.openai_api_key
        )
        for function in AI_FUNCTIONS
    }


def lane(
    settings: WorkerSettings, provider: Provider, function: str, base_url: str | None, key: str
) -> Lane:
    model = provider.model_for(function)
    limits = settings.ai_model_limits.get(model)
    budget = Budget(
        (limits and limits.requests_per_minute) or settings.ai_requests_per_minute,
        (limits and limits.tokens_per_minute) or settings.ai_tokens_per_minute,
    )
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Lane(
        key=f"{provider.name}|{base_url or 'default'}|{model}|{fingerprint}",
        provider=provider.name,
        model=model,
        budget=budget,
        shared=provider.name != "offline",
    )


def fallbacks(settings: WorkerSettings) -> dict[str, Route]:
    """The second model of each AI stage that has one, on the same provider or another
    OpenAI-compatible one, as the function's route when the first model keeps a call waiting."""
    if settings.ai_provider != "openai":
        return {}
    from stage_workers.ai.openai_provider import OpenAIProvider

    base_url = settings.ai_fallback_base_url or settings.openai_base_url
    key = settings.ai_fallback_api_key or settings.openai_api_key
    routes: dict[str, Route] = {}
    for stage, model in settings.ai_fallback_models.items():
        function = STAGE_FUNCTIONS[stage]
        provider = OpenAIProvider(
            base_url=base_url,
            api_key=key,
            text_model=model,
            image_model=model,
            timeout_seconds=settings.openai_timeout_seconds,
        )
        measured = InstrumentedProvider(provider, settings.ai_provider)
        routes[function] = Route(measured, lane(settings, measured, function, base_url, key))
    return routes


def call_timeout(settings: WorkerSettings) -> float:
    """The longest one AI call may take: the client's own timeout, twice over for its answer
    to come through a slow network."""
    return settings.openai_timeout_seconds * 2


def make_ai(settings: WorkerSettings, store: LaneStore | None, offload: Offload) -> GatedAI:
    provider = InstrumentedProvider(make_provider(settings), settings.ai_provider)
    rules = CallRules(
        call_timeout_seconds=call_timeout(settings),
        max_attempts=settings.ai_max_attempts,
        first_wait_seconds=settings.ai_retry_first_wait_seconds,
        longest_wait_seconds=settings.ai_longest_wait_seconds,
        fallback_after_seconds=settings.ai_fallback_after_seconds,
    )
    gate = Gate(store, store.rules if store else lane_rules(settings), offload)
    found = lanes(settings, provider)
    second = fallbacks(settings)
    models = [lane.model for lane in found.values()] + [r.lane.model for r in second.values()]
    declare_models(provider.name, models)
    # A call may take its timeout, and the write after it a moment: then it counts as lost.
    hold = rules.call_timeout_seconds + 30
    journal = Journal(store.engine, gate.process, hold) if store else None
    return GatedAI(provider, found, gate, rules, settings.ai_prices, journal, second)


async def _inline(function, *args):
    return function(*args)


def gated_alone(provider: Provider, rules: CallRules | None = None) -> GatedAI:
    """`provider` behind a gate of its own that shares nothing (no database): for tests and the
    direct loop of the benchmarks."""
    settings = WorkerSettings(ai_provider="offline")
    gate = Gate(None, lane_rules(settings), _inline)
    found = lanes(settings, provider)
    return GatedAI(provider, found, gate, rules or CallRules(), settings.ai_prices)


def offline_ai(latency_ms: int = 0) -> GatedAI:
    return gated_alone(OfflineProvider(latency_ms))


def make_economy(settings: WorkerSettings) -> Economy | None:
    """The ports of economy runs, for a provider with a batch interface (OpenAI's)."""
    if settings.ai_provider != "openai":
        return None
    from stage_workers.ai.openai_batches import OpenAIBatches

    provider = make_provider(settings)
    rules = EconomyRules(
        poll_first_seconds=settings.economy_poll_first_seconds,
        poll_longest_seconds=max(
            settings.economy_poll_longest_seconds, settings.economy_poll_first_seconds
        ),
        longest_outage_seconds=settings.ai_longest_wait_seconds,
        fallback=settings.economy_fallback,
    )
    return Economy(provider, OpenAIBatches(provider.client), settings.ai_prices, rules)
