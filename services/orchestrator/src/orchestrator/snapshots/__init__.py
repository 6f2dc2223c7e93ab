"""Snapshots of the orchestrator's fold (ADR 13), in three parts: `value` (what a snapshot is,
to bytes and back, and when the next is due; pure), `keeper` (when one is taken or restored, per
owned partition) and `store` (the orchestrator's own table)."""
