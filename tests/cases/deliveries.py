"""Isolation and role cases for the deliveries pages."""
