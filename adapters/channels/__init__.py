"""Inbound payload normalisers, one module per channel (see DESIGN.md §2)."""
