"""The benchmark of the petition service: `python -m bench --help`."""
