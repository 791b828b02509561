"""The public prediction API: forecasts and radius statistics from the serving bundle."""
