"""Watching the champion: input drift and live error against actuals (what the checks in
tractcast.workflows.checks act on)."""
