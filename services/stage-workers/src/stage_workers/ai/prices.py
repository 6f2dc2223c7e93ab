"""What a call cost in money, from a versioned price table (settings: AI_PRICES). Credits stay
the customer's bill; this is what the provider charged. A model the table does not know costs
None ("unknown"), never a guess."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from contracts.values import PROVIDER_BATCH_PRICE_SHARE
from stage_workers.ai.base import Usage

MILLION = Decimal(1_000_000)


class ModelPrice(BaseModel):
    input: Decimal | None = Field(None, description="USD per 1M input tokens.")
    cached_input: Decimal | None = Field(None, description="USD per 1M cached input tokens.")
    output: Decimal | None = Field(None, description="USD per 1M output tokens.")
    per_image: dict[str, Decimal] = Field(
        default_factory=dict, description="USD per image by size, when tokens are not priced."
    )

    def cost(self, usage: Usage) -> Decimal | None:
        tokens = usage.input_tokens or usage.output_tokens
        if tokens and self.input is not None and self.output is not None:
            cached = min(usage.cached_tokens, usage.input_tokens)
            cached_price = self.cached_input if self.cached_input is not None else self.input
            return (
                (usage.input_tokens - cached) * self.input
                + cached * cached_price
                + usage.output_tokens * self.output
            ) / MILLION
        if usage.images:
            each = self.per_image.get(usage.image_size or "")
            return each * usage.images if each is not None else None
        return Decimal(0) if not tokens else None


class PriceTable(BaseModel):
    version: str
    models: dict[str, ModelPrice]
    batch_share: Decimal = Field(
        PROVIDER_BATCH_PRICE_SHARE,
        description="What a request in a provider batch costs against the same call alone.",
    )

    def price_of(self, model: str) -> ModelPrice | None:
        """The model's price; a dated version ("gpt-4o-mini-2024-07-18") takes its family's
        (the longest known name it starts with)."""
        if model in self.models:
            return self.models[model]
        family = max((m for m in self.models if model.startswith(m + "-")), key=len, default=None)
        return self.models[family] if family else None

    def cost(self, model_requested: str, usage: Usage) -> Decimal | None:
        price = self.price_of(usage.model) or self.price_of(model_requested)
        return price.cost(usage) if price is not None else None

    def batch_cost(
        self, model_requested: str, usage: Usage
    ) -> tuple[Decimal | None, Decimal | None]:
        """What a request answered in a provider batch cost, and what that saved against the
        standard price (both None when the model is not priced)."""
        standard = self.cost(model_requested, usage)
        if standard is None:
            return None, None
        charged = standard * self.batch_share
        return charged, standard - charged


# OpenAI's list prices as published in 2026 (standard tier): gpt-4o-mini $0.15 / $0.075 cached /
# $0.60 per 1M tokens; gpt-4o $2.50 / $1.25 / $10.00; gpt-image-1 text in $5.00 (cached $1.25),
# image out $40.00; gpt-image-1-mini per image at medium quality.
DEFAULT_PRICES = PriceTable(
    version="openai-2026-12",
    models={
        "offline": ModelPrice(
            input=Decimal(0),
            cached_input=Decimal(0),
            output=Decimal(0),
            per_image={"offline": Decimal(0)},
        ),
        "gpt-4o-mini": ModelPrice(
            input=Decimal("0.15"), cached_input=Decimal("0.075"), output=Decimal("0.60")
        ),
        "gpt-4o": ModelPrice(
            input=Decimal("2.50"), cached_input=Decimal("1.25"), output=Decimal("10.00")
        ),
        "gpt-image-1": ModelPrice(
            input=Decimal("5.00"), cached_input=Decimal("1.25"), output=Decimal("40.00")
        ),
        "gpt-image-1-mini": ModelPrice(
            per_image={
                "1024x1024": Decimal("0.011"),
                "1024x1536": Decimal("0.015"),
                "1536x1024": Decimal("0.015"),
            }
        ),
    },
)
