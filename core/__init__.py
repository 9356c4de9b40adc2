"""Plain-Python building blocks of the addon: no ORM, no UI.

Each module here can be imported and unit-tested without a database.
"""
