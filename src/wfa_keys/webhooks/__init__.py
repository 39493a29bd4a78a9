"""Signed webhooks for key events (issue 23): endpoints, the outbox, the delivery worker.

Modules: :mod:`~.signing` (Standard Webhooks secrets and signatures), :mod:`~.guard` (the
SSRF guard), :mod:`~.events` (event types and the outbox), :mod:`~.endpoints` (the service
layer for endpoints), :mod:`~.sender` (one POST), :mod:`~.worker` (claiming and retrying),
:mod:`~.reminders` (expiry reminders and new-address alerts). Nothing is imported here, so
that :mod:`wfa_keys.audit` can import :mod:`~.events` without a cycle.
"""
