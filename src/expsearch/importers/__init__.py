"""Importers of other systems' experiment records into this project's dataset tables."""
