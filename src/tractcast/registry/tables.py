"""The metadata database's tables, as SQLAlchemy models; migrations/ creates and evolves them."""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, Column, Integer, MetaData, String, Table, Text

from tractcast.settings import DEFAULT_LAYER

MODEL_EVENT_KINDS = ("registered", "promoted", "rejected", "rolled_back")
# events about data releases: their `version` is the data version
DATA_EVENT_KINDS = ("data_held", "data_accepted", "data_refused", "feed_stale")
EVENT_KINDS = MODEL_EVENT_KINDS + DATA_EVENT_KINDS
CHAMPION_KINDS = ("promoted", "rolled_back")

SCHEMA = MetaData()  # the models; migrations/ creates and evolves them


def layer_column(*, primary_key: bool = False, index: bool = False) -> Column[str]:
    """The tract layer a row belongs to: layers sharing one database keep their rows apart."""
    return Column(
        "layer",
        String(40),
        primary_key=primary_key,
        index=index,
        nullable=False,
        default=DEFAULT_LAYER,
        server_default=DEFAULT_LAYER,
    )


versions_table = Table(
    "versions",
    SCHEMA,
    Column("version", String(64), primary_key=True),
    layer_column(primary_key=True),
    Column("family", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("data_version", String(160), nullable=False, default=""),
    Column("metrics", JSON, nullable=False),
    Column("manifest", JSON, nullable=False),
)

events_table = Table(
    "events",
    SCHEMA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("version", String(64), nullable=False, index=True),
    Column("from_version", String(64), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("trigger", String(40), nullable=False, default="manual"),
    layer_column(index=True),
    CheckConstraint(
        "kind IN ({})".format(", ".join(f"'{k}'" for k in EVENT_KINDS)), name="event_kind"
    ),
)

# What serves, one row per slot ("current") and layer: the bundle `current` points at, kept
# beside the link so replicas on hosts without the store find it (tractcast.registry.remote).
serving_table = Table(
    "serving",
    SCHEMA,
    Column("slot", String(64), primary_key=True),
    layer_column(primary_key=True),
    Column("bundle_id", String(240), nullable=False),
    Column("version", String(64), nullable=False),
    Column("updated_at", String(40), nullable=False),
)
