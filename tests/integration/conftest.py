"""Fixtures every integration module may ask for: the gateway as a process and a stand-in
orchestrator that answers its run commands (module-scoped: one of each per test module), and
an account with a token and a site (`tenant`), and another (`other`)."""

from tests.support.gateway import gateway, orchestrator, other, tenant

__all__ = ["gateway", "orchestrator", "other", "tenant"]
