"""The notifier's own Postgres tables (prefixed notifier_, so they can live in
a database shared with other services; Alembic tracks them in
alembic_version_notifier). The migrations in services/notifier/migrations/ create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import signing_keys_table

VERSION_TABLE = "alembic_version_notifier"


class Base(DeclarativeBase):
    metadata = MetaData()


class Event(Base):
    """One payment event as taken in, until it is routed to the merchant's endpoints."""

    __tablename__ = "notifier_events"

    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str] = mapped_column(String(64), server_default="")
    body: Mapped[bytes] = mapped_column(LargeBinary)
    event_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Not routed before this (pushed back while the ledger cannot say where webhooks go).
    route_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    routed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_notifier_events_unrouted", "route_after", postgresql_where=text("routed_at IS NULL")),
        Index("ix_notifier_events_created", "created_at"),
    )


class Delivery(Base):
    """One event on its way to one of a merchant's webhook endpoints."""

    __tablename__ = "notifier_deliveries"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    event_type: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[str] = mapped_column(String(64))
    # "primary" (the operator's webhook) or a WebhookEndpoint's id.
    endpoint_id: Mapped[str] = mapped_column(String(64), server_default="primary")
    payment_id: Mapped[str] = mapped_column(String(64), server_default="")
    # The exact JSON body sent on every attempt.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    event_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    # Due time for pending deliveries. Claiming an attempt pushes it to the end
    # of the lease, so a crashed attempt becomes due again by itself.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set while an attempt is leased; the attempt's result is applied only with it.
    lease_token: Mapped[str | None] = mapped_column(UUID(as_uuid=False), nullable=True)
    attempt_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # Attempts since the delivery was created or last redelivered (drives the schedule).
    cycle_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    url: Mapped[str] = mapped_column(Text, server_default="")
    last_status_code: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_notifier_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
        Index("ix_notifier_deliveries_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_notifier_deliveries_created", "created_at", "id"),
        Index("ix_notifier_deliveries_payment", "payment_id"),
        Index(
            "ix_notifier_deliveries_dead",
            "merchant_id",
            postgresql_where=text("state = 'dead_lettered'"),
        ),
        Index(
            "ix_notifier_deliveries_endpoint_dead",
            "merchant_id",
            "endpoint_id",
            postgresql_where=text("state = 'dead_lettered'"),
        ),
        UniqueConstraint("event_id", "endpoint_id", name="uq_notifier_deliveries_event_endpoint"),
    )


class Attempt(Base):
    """One try at delivering; written when claimed, completed with its result."""

    __tablename__ = "notifier_attempts"

    delivery_id: Mapped[str] = mapped_column(ForeignKey("notifier_deliveries.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int] = mapped_column(Integer, server_default="0")
    status_code: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str] = mapped_column(Text, server_default="")
    outcome: Mapped[str] = mapped_column(String(16), server_default="in_progress")
    url: Mapped[str] = mapped_column(Text, server_default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


events = Event.__table__
deliveries = Delivery.__table__
attempts = Attempt.__table__


# Keys the notifier made for itself, shared by its replicas (the page token key).
SIGNING_KEYS = "notifier_signing_keys"
SigningKeys = signing_keys_table(Base.metadata, SIGNING_KEYS)
