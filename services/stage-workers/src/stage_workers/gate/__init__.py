"""The one gate between the stages and an AI provider, shared by every worker process: budgets,
the provider's own retry advice, a circuit breaker per provider + model, and usage recorded per
call (docs/adr/0014-ai-gate.md)."""
