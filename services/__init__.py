"""Request handling and background work on top of the models: ORM code that is
not a model of its own (see docs/CONTRIBUTING.md, "How it works")."""
