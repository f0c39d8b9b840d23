"""Print the served schema: `python -m schema > schema.graphql`."""

from . import schema

print(schema.as_str())
