"""Watching the champion: input drift, live error against actuals, and what triggers a retrain."""
