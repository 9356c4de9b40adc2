"""Plain-Python classes that work on an Odoo environment, outside the models."""
