"""Isolation and role cases for the overview pages."""
