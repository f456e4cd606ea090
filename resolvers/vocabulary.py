"""Declared enum members the rules read by name (until the declarations give the roles they play)."""

from __future__ import annotations

from schema.graph import enum

TicketStatus = enum("TicketStatus")
# Tickets still open in some way: they block a cross-sell and say what a customer needs now.
UNRESOLVED = frozenset({TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD})
