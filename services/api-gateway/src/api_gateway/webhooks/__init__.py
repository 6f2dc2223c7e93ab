"""Webhooks (docs/adr/0019-webhooks.md): what is sent (`payloads`), how it is signed
(`signing`), when it is tried again (`retry`) and where it may go (`addresses`); these modules
are pure. `endpoints` and `models` are the API's side (routes/webhooks.py): it writes endpoints,
secrets and the rows it enqueues itself. The consumer and the delivery loop (`store`, `client`,
`attempt`) run in `api-gateway webhooks`, a process of its own."""
