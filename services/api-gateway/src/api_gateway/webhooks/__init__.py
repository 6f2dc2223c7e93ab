"""Webhooks (docs/adr/0019-webhooks.md): what is sent (`payloads`), how it is signed
(`signing`), when it is tried again (`retry`) and where it may go (`addresses`). These modules
are pure; the consumer and the delivery loop that use them run in `api-gateway webhooks`, a
process of its own."""
