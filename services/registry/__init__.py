"""The registry service: model versions, which one serves, promotion and rollback."""
