"""Documents judged once: parsed with a token limit, held to the query limits, validated, and
the verdict kept per document text, for every path that runs documents (Strawberry's, the
compiled plans, the cohorts).

The limits are checked before the specification's rules, cheapest first, and a document that
exceeds one is refused without the rest: a refused document costs about what parsing it costs.
Tokens are counted by graphql-core's parser (`max_tokens`, as Strawberry's `MaxTokensLimiter`
sets it); the cost (below) is computed once per fragment, so fragments that spread each other
many times cannot make the check itself slow; depth and aliases are Strawberry's own rules
(`QueryDepthLimiter`, `MaxAliasesLimiter`), run only once the cost has bounded the document's
expanded size; the validation of the specification stops after `errors` errors (graphql-core's
`max_errors`, which then adds one error saying so).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from .pagination import DEFAULT_PAGE, MAX_PAGE


@dataclass(frozen=True)
class Limits:
    """What one document may ask, and how long one operation may run. The defaults protect a
    public deployment and pass everything the service's own pages, widget and dashboard send."""

    aliases: int = 30
    depth: int = 12
    directives: int = 50
    errors: int = 5
    tokens: int = 5_000
    cost: int = 20_000
    seconds: float = 10.0


@dataclass(frozen=True)
class Judged:
    """A document's verdict: its syntax tree when it parsed, and every error found (none: it
    may run)."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]


_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)


def without_suggestion(error: GraphQLError) -> None:
    """Drop "Did you mean …?" from an error: with introspection off, a client must not learn
    the schema's names from its mistakes either."""
    error.message = _SUGGESTION.sub("", error.message)


class Documents:
    """Judges documents against one schema, keeping the latest `max_entries` verdicts."""

    def __init__(
        self,
        schema: GraphQLSchema,
        limits: Limits,
        *,
        introspection: bool = True,
        max_entries: int = 1000,
    ) -> None:
        self.schema = schema
        self.limits = limits
        self.introspection = introspection
        self.max_entries = max_entries
        self._limit_rules = (
            *QueryDepthLimiter(max_depth=limits.depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=limits.aliases).validation_rules,
            _directives_rule(limits.directives),
        )
        self._rules = (*specified_rules, MaybeNullValidationRule, OneOfInputValidationRule)
        if not introspection:
            self._rules += (NoSchemaIntrospectionCustomRule,)
        self._judged: OrderedDict[str, Judged] = OrderedDict()

    def judge(self, query: str) -> Judged:
        judged = self._judged.get(query)
        if judged is not None:
            self._judged.move_to_end(query)
            return judged
        judged = self._judge(query)
        self._judged[query] = judged
        while len(self._judged) > self.max_entries:
            self._judged.popitem(last=False)
        return judged

    def _judge(self, query: str) -> Judged:
        try:
            document = parse(query, max_tokens=self.limits.tokens)
        except GraphQLError as error:
            return self._refused(None, [error])
        cost = document_cost(self.schema, document)
        if cost > self.limits.cost:
            message = (
                f"This document costs {cost:,}, more than the {self.limits.cost:,} allowed: "
                "ask for fewer items (`first`, `last`) or fewer fields."
            )
            return self._refused(document, [GraphQLError(message)])
        errors = validate(self.schema, document, self._limit_rules)
        if not errors:
            errors = validate(
                self.schema,
                document,
                self._rules,
                max_errors=self.limits.errors,
                hide_suggestions=not self.introspection,
            )
        return self._refused(document, errors) if errors else Judged(document, ())

    def _refused(self, document: DocumentNode | None, errors: list[GraphQLError]) -> Judged:
        if not self.introspection:
            for error in errors:
                without_suggestion(error)
        return Judged(document, tuple(errors))


def _directives_rule(limit: int) -> type[ValidationRule]:
    class MaxDirectives(ValidationRule):
        """At most `limit` directives in one document (no library counts them)."""

        count = 0

        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            self.count += 1
            if self.count == limit + 1:
                self.report_error(
                    GraphQLError(f"This document has more than the {limit} directives allowed.")
                )

    return MaxDirectives


def document_cost(schema: GraphQLSchema, document: DocumentNode) -> int:
    """The largest cost of the document's operations: each field selected costs 1, and what a
    connection's field selects counts once per item it may return (`first` or `last`: the
    value given, a variable's default, or the most a page may hold; 10 when neither is given).
    A fragment's cost is computed once per type it is spread on, so that fragments spreading
    each other cannot make this slow (written by hand: no library prices connections)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    known: dict[tuple[str, str], int] = {}
    visiting: set[str] = set()

    def page_size(node: FieldNode, defaults: dict[str, int]) -> int:
        for argument in node.arguments or ():
            if argument.name.value not in {"first", "last"}:
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(int(value.value), 0)
            if isinstance(value, VariableNode):
                return defaults.get(value.name.value, MAX_PAGE)
            return MAX_PAGE
        return DEFAULT_PAGE

    def cost_of(
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        defaults: dict[str, int],
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                field = None
                if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                    field = parent.fields.get(selection.name.value)
                child = get_named_type(field.type) if field is not None else None
                items = page_size(selection, defaults) if field and "first" in field.args else 1
                total += 1 + items * cost_of(selection.selection_set, child, defaults)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = schema.get_type(condition.name.value) if condition else parent
                total += cost_of(selection.selection_set, on, defaults)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment_cost(selection.name.value, defaults)
        return total

    def fragment_cost(name: str, defaults: dict[str, int]) -> int:
        fragment = fragments.get(name)
        if fragment is None or name in visiting:
            return 0  # unknown or cyclic: the specification's rules refuse it
        key = (name, repr(sorted(defaults.items())))
        if key not in known:
            visiting.add(name)
            on = schema.get_type(fragment.type_condition.name.value)
            known[key] = cost_of(fragment.selection_set, on, defaults)
            visiting.discard(name)
        return known[key]

    highest = 0
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        defaults = {
            variable.variable.name.value: max(int(variable.default_value.value), 0)
            for variable in definition.variable_definitions or ()
            if isinstance(variable.default_value, IntValueNode)
        }
        root = schema.get_root_type(definition.operation)
        highest = max(highest, cost_of(definition.selection_set, root, defaults))
    return highest
