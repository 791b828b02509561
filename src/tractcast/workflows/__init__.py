"""Workflows that combine the parts: retrain (`retrain`), the scheduled checks (`checks`) and
automated rollback (`rollback`). They sit above the registry and monitoring; nothing below
imports them."""
