"""Documents judged once: parsed with a token limit, held to the query limits, validated, and
the verdict kept per document text, for every path that runs documents (Strawberry's, the
compiled plans, the cohorts).

The limits are checked before the specification's rules, cheapest first, and a document that
exceeds one is refused without the rest: a refused document costs about what parsing it costs.
Tokens are counted by graphql-core's parser (`max_tokens`, as Strawberry's `MaxTokensLimiter`
sets it). The cost comes next, computed once per fragment: it bounds the document's size with
every fragment spread, so that Strawberry's `QueryDepthLimiter` and `MaxAliasesLimiter`, which
expand every spread, only ever see a document of bounded size; then the directives. The
specification's rules stop after `errors` errors (graphql-core's `max_errors`, which then adds
one saying so), and their comparison of same-named fields after `MERGE_BUDGET` units of work.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from graphql import (
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
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    TypeInfo,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import (
    ASTValidationRule,
    NoSchemaIntrospectionCustomRule,
    OverlappingFieldsCanBeMergedRule,
)
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
    limited: bool = False  # refused for going over a limit, not for breaking a rule

    def operation(self, operation_name: str | None) -> OperationDefinitionNode | None:
        """The operation a fit document runs; None for a refused document."""
        if self.document is None or self.errors:
            return None
        for definition in self.document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            name = definition.name.value if definition.name else None
            if operation_name is None or name == operation_name:
                return definition
        return None

    def root_field(self, operation_name: str | None) -> str | None:
        """The first root field of the operation a fit document runs (`signPetition`,
        `petition`): what the metrics call the operation. None for a refused document."""
        operation = self.operation(operation_name)
        for selection in operation.selection_set.selections if operation else ():
            if isinstance(selection, FieldNode):
                return selection.name.value
        return None


_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)


def without_suggestion(error: GraphQLError) -> None:
    """Drop "Did you mean …?" from an error: with introspection off, a client must not learn
    the schema's names from its mistakes either."""
    error.message = _SUGGESTION.sub("", error.message)


TOO_MANY_ERRORS = "Too many validation errors, error limit reached. Validation aborted."


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
        rules = (_budgeted(rule) for rule in specified_rules)
        self._rules = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
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
            document = parse(query, max_tokens=self.limits.tokens, allow_empty_selection_sets=False)
        except GraphQLError as error:
            limited = "more than" in error.message and "tokens" in error.message
            return self._refused(None, [error], limited=limited)
        cost = document_cost(self.schema, document)
        if cost > self.limits.cost:
            message = (
                f"This document costs {cost:,}, more than the {self.limits.cost:,} allowed: "
                "ask for fewer items (`first`, `last`) or fewer fields."
            )
            return self._refused(document, [GraphQLError(message)], limited=True)
        # Strawberry's limiters judge when they are made: no visit of the document needed.
        errors: list[GraphQLError] = []
        context = ValidationContext(self.schema, document, TypeInfo(self.schema), errors.append)
        for rule in self._limit_rules:
            try:
                rule(context)
            except KeyError:  # the depth limiter meets an unknown fragment: the rules name it
                pass
        if len(errors) > self.limits.errors:  # one a field too deep: as many as graphql-core
            errors[self.limits.errors :] = [GraphQLError(TOO_MANY_ERRORS)]
        if errors:
            return self._refused(document, errors, limited=True)
        errors = validate(
            self.schema,
            document,
            self._rules,
            max_errors=self.limits.errors,
            hide_suggestions=not self.introspection,
        )
        return self._refused(document, errors) if errors else Judged(document, ())

    def _refused(
        self, document: DocumentNode | None, errors: list[GraphQLError], *, limited: bool = False
    ) -> Judged:
        if not self.introspection:
            for error in errors:
                without_suggestion(error)
        return Judged(document, tuple(errors), limited)


MERGE_BUDGET = 10_000  # the service's own documents spend under 10


def _budgeted(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """graphql-core's rule that fields of one name can be merged compares them pair by pair,
    until its budget of work is spent: 2,500 `__typename` make three million pairs, and its
    default budget took about 100 ms to spend; with `MERGE_BUDGET`, a few."""
    if rule is not OverlappingFieldsCanBeMergedRule:
        return rule

    class BudgetedOverlappingFieldsCanBeMergedRule(OverlappingFieldsCanBeMergedRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.rule_context.remaining_complexity_budget = MERGE_BUDGET

    return BudgetedOverlappingFieldsCanBeMergedRule


def _directives_rule(limit: int) -> type[ValidationRule]:
    class MaxDirectives(ValidationRule):
        """At most `limit` directives in one document (no library counts them); judged when
        made, as Strawberry's limiters judge, so that no visit is needed."""

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            if _directives(context.document) > limit:
                message = f"This document has more than the {limit} directives allowed."
                context.report_error(GraphQLError(message))

    return MaxDirectives


def _directives(node: Node) -> int:
    """Every directive written in the document (each fragment counted once)."""
    count = len(getattr(node, "directives", None) or ())
    for child in (
        *(getattr(node, "definitions", None) or ()),
        *(getattr(node, "variable_definitions", None) or ()),
        *(getattr(getattr(node, "selection_set", None), "selections", None) or ()),
    ):
        count += _directives(child)
    return count


def document_cost(schema: GraphQLSchema, document: DocumentNode) -> int:
    """The largest cost of the document's operations: each field selected costs 1, and what a
    connection's field selects counts once per item it may return (`first` or `last`: the
    value given (at least 1), a variable's default, or the most a page may hold; 10 when neither
    is given).
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
            if isinstance(value, IntValueNode):  # `first: 0` still answers pageInfo, totalCount
                return max(int(value.value), 1)
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
            variable.variable.name.value: max(int(variable.default_value.value), 1)
            for variable in definition.variable_definitions or ()
            if isinstance(variable.default_value, IntValueNode)
        }
        root = schema.get_root_type(definition.operation)
        highest = max(highest, cost_of(definition.selection_set, root, defaults))
    return highest
