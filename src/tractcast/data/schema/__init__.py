"""Column inference by content: layout, date column, tract key joined to the layer, value column.

Layouts: "long" (one row per date and area), "wide" (one column per date) and "wide_by_tract"
(one row per date, one column per tract). Areas join the layer by a key column whose values match
a layer property, or by latitude/longitude columns mapped to tracts through the geo index.

One module per concept: `parsing` (keys, dates, number formats), `results` (the Schema and what
inference needs from a layer), `dates`, `keys` (the tract-key join), `coordinates`, `counts`
(count detection), `cells` (cell extraction) and `inference`, which combines them.
"""

from tractcast.data.schema.cells import table_cells
from tractcast.data.schema.counts import tract_populations
from tractcast.data.schema.inference import infer_schema
from tractcast.data.schema.results import Cells, Schema, TractLayer

__all__ = ["Cells", "Schema", "TractLayer", "infer_schema", "table_cells", "tract_populations"]
