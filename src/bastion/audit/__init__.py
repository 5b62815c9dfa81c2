"""The audit trail (SPEC §6): typed events, stored with the change they describe, logged
with secrets redacted, and counted."""
