"""Schema migrations, one subpackage per Tortoise app (see models/migrations.py)."""
