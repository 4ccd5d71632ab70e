"""Errors of the duty store and the guard (DESIGN.md: High availability)."""

from __future__ import annotations

from ha_sequencer.errors import EXIT_FAILURE_FOUND, EXIT_USAGE, HASequencerError


class DutyStoreError(HASequencerError):
    """The duty store failed or refused; the guard turns it into "no signature" (fail closed)."""

    exit_code = EXIT_FAILURE_FOUND


class StoreUnreachable(DutyStoreError):
    """The store did not answer (connection refused, timeout, file unusable)."""


class SchemaMismatch(DutyStoreError):
    """The store's schema is missing, older or newer than this build; the message names the fix."""

    exit_code = EXIT_USAGE


class StoreURLError(DutyStoreError):
    """A `--db` URL this build cannot open."""

    exit_code = EXIT_USAGE


class DuplicateNodeError(DutyStoreError):
    """Another live node already runs with this node id (its heartbeat is fresh)."""

    exit_code = EXIT_USAGE


class InterchangeError(DutyStoreError):
    """An export/import document that is malformed or conflicts with the store."""

    exit_code = EXIT_USAGE


class ImportConflict(DutyStoreError):
    """The imported history signed a different digest than the store for the same duty."""

    exit_code = EXIT_FAILURE_FOUND


class ReadOnlyServer(DutyStoreError):
    """Every reachable server of the store's URL is read-only (a standby): duties cannot be recorded there."""

    exit_code = EXIT_USAGE


class NoSynchronousStandby(DutyStoreError):
    """A replicated store whose primary has no synchronous standby: a failover could forget a record."""

    exit_code = EXIT_USAGE
