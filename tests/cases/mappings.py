"""Isolation and role cases for the mappings pages."""
