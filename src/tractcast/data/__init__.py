"""Case data: reading sources, inferring their columns, the canonical series, cleaning, demo."""
