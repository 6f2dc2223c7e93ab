"""The operators' web console: server-rendered page shells, a session cookie, and a small
script that drives the public JSON API and its live event stream (see docs/adr/0010)."""
