"""Shared contracts: messages, the envelope, topics, the run-state fold, tracing and the database
schema.

This is the only code the services share.
"""
