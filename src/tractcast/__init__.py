"""tractcast: per-tract infection forecasts."""
