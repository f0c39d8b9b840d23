"""Compiled plans: hot documents run without Strawberry's per-request machinery.

In a spike, thousands of pages send the very same signing document every second. Strawberry
then does the same generic work for each: extension hooks, converting arguments, wrapping
every resolver, completing every field through graphql-core's executor. Most of a signature's
cost was there, not in signing. So the first time a document is seen, it is parsed and
validated once, and if its operation is one root field we know (`ROOTS`) with a selection of
plain fields (and, on the root's object, fields whose resolver needs only that object: the
pages of `signatures` and `comments`, run as `Fetch`es), it becomes a `Plan`: the variables
coerced as graphql-core coerces them (by graphql-core itself beyond the common case, so
refusals read the same), the very functions Strawberry's resolvers call, and a tree of
writers that turns the result into JSON as graphql-core would (each leaf through its GraphQL
type's `serialize`). Anything else (other fields, directives, abstract types, a variable that
does not coerce, a resolver that fails) goes through Strawberry as before: the endpoint stays
GraphQL for every client, and a test holds the two paths to the same answers. Documents come
judged (`Documents`): one the limits or the rules refuse is never compiled, and Strawberry
answers it from the same verdict.
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    get_argument_values,
    get_variable_values,
)
from graphql.pyutils import Undefined
from graphql.type import specified_scalar_types

from .context import Context
from .documents import Documents
from .errors import MASKED, PublicError
from .mutations import resolve_sign_petition
from .queries import resolve_petition

log = logging.getLogger("strawberry.execution")  # where Strawberry logs a resolver's fault

_DEFINITION = "strawberry-definition"  # Strawberry's back-reference on graphql-core types

# The root fields a plan may run, each with the function its Strawberry resolver calls.
ROOTS: dict[tuple[OperationType, str], Callable[..., Awaitable[Any]]] = {
    (OperationType.MUTATION, "signPetition"): resolve_sign_petition,
    (OperationType.QUERY, "petition"): resolve_petition,
}

Write = Callable[[Any], Any]  # a resolved value -> its JSON-ready form
Fragments = Mapping[str, FragmentDefinitionNode]
Arguments = tuple[tuple[str, str, Callable[[Any], Any]], ...]  # GraphQL name, Python, convert

# What this run's fetches found, by `Fetch`: the writers run synchronously, after them.
_FETCHED: ContextVar[dict[Fetch, Any]] = ContextVar("petitions.compiled.fetched")


class NotCompiled(Exception):
    """The document asks for something a plan does not do: Strawberry runs it."""


@dataclass(frozen=True, eq=False)  # each one is itself: a key by identity
class Fetch:
    """A field of the root's object with a resolver of its own that needs nothing but the
    object and its arguments (a page of `signatures`, of `comments`): awaited after the root
    field, before the answer is written."""

    node: FieldNode
    field: GraphQLField
    arguments: Arguments
    resolve: Callable[..., Awaitable[Any]]

    async def run(self, owner: Any, values: Any) -> Any:
        given = get_argument_values(self.field, self.node, values)
        return await self.resolve(owner, **_converted(self.arguments, given))


@dataclass(frozen=True)
class Plan:
    """One operation with one root field, ready to run without Strawberry."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    node: FieldNode
    field: GraphQLField
    arguments: Arguments
    resolve: Callable[..., Awaitable[Any]]
    write: Write
    fetches: tuple[Fetch, ...] = ()
    coerce: Callable[[dict[str, Any]], VariableValues | None] = lambda _: None

    @property
    def reads_only(self) -> bool:
        return self.operation.operation is OperationType.QUERY

    @property
    def key(self) -> str:
        return self.node.alias.value if self.node.alias else self.node.name.value

    async def run(self, context: Context, variables: Any) -> bytes | None:
        """The encoded answer, or None for Strawberry to answer instead: when the variables
        do not coerce (nothing has run), and when a query fails (reading changes nothing, so
        Strawberry reads again and reports the error its own way)."""
        if variables is None:
            variables = {}
        if not isinstance(variables, dict):
            return None
        values: Any = self.coerce(variables)
        if values is None:  # anything unusual: graphql-core coerces, and words any refusal
            values = get_variable_values(
                self.schema, self.operation.variable_definitions or (), variables
            )
            if isinstance(values, list):
                return None
        try:
            given = get_argument_values(self.field, self.node, values)
        except GraphQLError:
            return None
        kwargs = _converted(self.arguments, given)
        try:
            value = await self.resolve(context, **kwargs)
            fetched = {}
            if value is not None:
                for fetch in self.fetches:
                    fetched[fetch] = await fetch.run(value, values)
            token = _FETCHED.set(fetched)
            try:
                answer: dict[str, Any] = {"data": {self.key: self.write(value)}}
            finally:
                _FETCHED.reset(token)
        except Exception as failure:
            if self.reads_only:
                return None
            if isinstance(failure, PublicError):
                message = str(failure)
            else:
                log.exception("a compiled %s failed", self.node.name.value)
                message = MASKED
            location = (
                self.node.loc.source.get_location(self.node.loc.start) if self.node.loc else None
            )
            error: dict[str, Any] = {"message": message}
            if location is not None:
                error["locations"] = [{"line": location.line, "column": location.column}]
            error["path"] = [self.key]
            # A fault nulls the field, and the whole answer if the field is non-null.
            data = None if isinstance(self.field.type, GraphQLNonNull) else {self.key: None}
            answer = {"data": data, "errors": [error]}
        return json.dumps(answer, separators=(",", ":")).encode()


def _converted(arguments: Arguments, given: dict[str, Any]) -> dict[str, Any]:
    return {python: convert(given[name]) for name, python, convert in arguments if name in given}


class Plans:
    """Plans by document and operation name, compiled on first sight (a bounded LRU that
    also remembers which documents do not compile)."""

    def __init__(self, documents: Documents, max_entries: int = 1000) -> None:
        self.documents = documents
        self.schema = documents.schema
        self.max_entries = max_entries
        self._plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()
        self._roots = {name for _, name in ROOTS}

    def get(self, query: str, operation_name: str | None) -> Plan | None:
        if not any(name in query for name in self._roots):
            return None  # cheap: most documents never come near a compiled root
        key = (query, operation_name)
        try:
            self._plans.move_to_end(key)
            return self._plans[key]
        except KeyError:
            pass
        judged = self.documents.judge(query)
        plan: Plan | None = None
        if judged.document is not None and not judged.errors:  # Strawberry tells what is wrong
            try:
                plan = compile_plan(self.schema, judged.document, operation_name)
            except NotCompiled:
                pass
        self._plans[key] = plan
        while len(self._plans) > self.max_entries:
            self._plans.popitem(last=False)
        return plan

    def __len__(self) -> int:
        return sum(plan is not None for plan in self._plans.values())


def compile_plan(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> Plan:
    """A plan for a valid document's operation, or `NotCompiled` saying why not."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        raise NotCompiled("no single operation to run")
    [operation] = operations
    if operation.directives:
        raise NotCompiled("operation directives")
    root_type = schema.get_root_type(operation.operation)
    assert root_type is not None  # validated
    roots = _fields(root_type, operation.selection_set, fragments)
    if len(roots) != 1:
        raise NotCompiled("not one root field")
    [(_, node)] = roots
    resolve = ROOTS.get((operation.operation, node.name.value))
    if resolve is None:
        raise NotCompiled(f"{node.name.value} is not a compiled root")
    field = root_type.fields[node.name.value]
    fetches: list[Fetch] = []
    return Plan(
        schema=schema,
        operation=operation,
        node=node,
        field=field,
        arguments=_arguments(field),
        resolve=resolve,
        write=_writer(field.type, node.selection_set, fragments, fetches),
        fetches=tuple(fetches),
        coerce=_variables_coercer(schema, operation),
    )


# Coercing a variable's value, for the built-in scalars: the value, or _NO when graphql-core
# must look at it (it would refuse it, or convert it in a way not repeated here).
_NO: Any = object()
_INT_RANGE = range(-(2**31), 2**31)
_BUILT_IN = specified_scalar_types
_SCALARS: dict[str, Callable[[Any], Any]] = {
    "String": lambda v: v if type(v) is str else _NO,
    "ID": lambda v: v if type(v) is str else str(v) if type(v) is int else _NO,
    "Boolean": lambda v: v if type(v) is bool else _NO,
    "Int": lambda v: v if type(v) is int and v in _INT_RANGE else _NO,
    "Float": lambda v: float(v) if type(v) in (int, float) and math.isfinite(v) else _NO,
}


def _variables_coercer(
    schema: GraphQLSchema, operation: OperationDefinitionNode
) -> Callable[[dict[str, Any]], VariableValues | None]:
    """graphql-core's coercion of the variables, for the common case only (built-in scalars,
    and input objects of them; no variable defaults): the coerced values, or None for
    graphql-core to coerce (and to word the refusal). graphql-core's general walk was a third
    of a hot document's time; what is accepted here, it would accept as the same values."""
    checks: list[tuple[str, GraphQLVariableSignature, bool, Callable[[Any], Any]]] = []
    for definition in operation.variable_definitions or ():
        signature = get_variable_signature(schema, definition)
        if definition.default_value is not None or isinstance(signature, GraphQLError):
            return lambda _: None
        type_ = signature.type
        required = isinstance(type_, GraphQLNonNull)
        coerce = _coercer(type_.of_type if isinstance(type_, GraphQLNonNull) else type_)
        if coerce is None:
            return lambda _: None
        checks.append((signature.name, signature, required, coerce))

    def coerce_variables(given: dict[str, Any]) -> VariableValues | None:
        sources: dict[str, VariableValueSource] = {}
        values: dict[str, Any] = {}
        for name, signature, required, coerce in checks:
            if name not in given:
                if required:
                    return None
                sources[name] = VariableValueSource(signature)
                continue
            sources[name] = VariableValueSource(signature, given[name])
            value = _given(given[name], required, coerce)
            if value is _NO:
                return None
            values[name] = value
        return VariableValues(sources, values)

    return coerce_variables


def _coercer(type_: Any) -> Callable[[Any], Any] | None:
    if isinstance(type_, GraphQLScalarType):
        return _SCALARS.get(type_.name) if type_ is _BUILT_IN.get(type_.name) else None
    if not isinstance(type_, GraphQLInputObjectType) or type_.is_one_of:
        return None
    if type_.out_type is not GraphQLInputObjectType.out_type:
        return None
    fields: list[tuple[str, bool, Any, Callable[[Any], Any]]] = []
    for name, field in type_.fields.items():
        required = isinstance(field.type, GraphQLNonNull)
        inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if not isinstance(inner, GraphQLScalarType) or field.out_name:
            return None
        coerce = _coercer(inner)
        if coerce is None:
            return None
        fields.append((name, required, field.default_value, coerce))
    known = frozenset(name for name, *_ in fields)

    def coerce_object(value: Any) -> Any:
        if type(value) is not dict or not known.issuperset(value):
            return _NO
        coerced: dict[str, Any] = {}
        for name, required, default, coerce in fields:
            if name not in value:
                if default is not Undefined:
                    coerced[name] = default
                elif required:
                    return _NO
                continue
            item = _given(value[name], required, coerce)
            if item is _NO:
                return _NO
            coerced[name] = item
        return coerced

    return coerce_object


def _given(value: Any, required: bool, coerce: Callable[[Any], Any]) -> Any:
    """A value given for a variable or an input field, coerced (null where null may be), or
    _NO for graphql-core to look at."""
    if value is None:
        return _NO if required else None
    return coerce(value)


def _arguments(field: GraphQLField) -> Arguments:
    return tuple(
        (name, _definition(argument).python_name, _converter(argument.type))
        for name, argument in field.args.items()
    )


def _definition(thing: Any) -> Any:
    definition = (thing.extensions or {}).get(_DEFINITION)
    if definition is None:
        raise NotCompiled("not a Strawberry definition")
    return definition


def _converter(type_: GraphQLInputType) -> Callable[[Any], Any]:
    """Coerced argument value -> what Strawberry's resolver receives: scalars as they are,
    an input object of scalars as its Strawberry class."""
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLScalarType):
        return lambda value: value
    if not isinstance(inner, GraphQLInputObjectType):
        raise NotCompiled("argument of a kind plans do not convert")
    names: dict[str, str] = {}
    for name, input_field in inner.fields.items():
        field_type = input_field.type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        if not isinstance(field_type, GraphQLScalarType):
            raise NotCompiled("input field of a kind plans do not convert")
        names[name] = _definition(input_field).python_name
    cls = _definition(inner).origin

    def convert(value: dict[str, Any] | None) -> Any:
        if value is None:
            return None
        return cls(**{names[name]: item for name, item in value.items()})

    return convert


def _writer(
    type_: GraphQLOutputType,
    selection_set: SelectionSetNode | None,
    fragments: Fragments,
    fetches: list[Fetch] | None = None,
) -> Write:
    """How graphql-core would complete a value of `type_` for this selection. With `fetches`
    (the root field's object, not in a list), a field whose resolver needs only the object
    becomes a `Fetch`, added there."""
    if isinstance(type_, GraphQLNonNull):
        write = _writer(type_.of_type, selection_set, fragments, fetches)

        def non_null(value: Any) -> Any:
            if value is None:
                raise TypeError("null for a non-null field")
            return write(value)

        return non_null
    if isinstance(type_, GraphQLList):
        item = _writer(type_.of_type, selection_set, fragments)
        write = lambda value: [item(each) for each in value]  # noqa: E731
    elif isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        write = type_.serialize
    elif isinstance(type_, GraphQLObjectType) and selection_set is not None:
        write = _object_writer(type_, selection_set, fragments, fetches)
    else:
        raise NotCompiled("abstract type")
    return lambda value: None if value is None else write(value)


def _constant(value: Any) -> Write:
    return lambda _: value


def _object_writer(
    type_: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: Fragments,
    fetches: list[Fetch] | None = None,
) -> Write:
    parts: list[tuple[str, str | None, Write]] = []  # response key, attribute, writer
    for key, node in _fields(type_, selection_set, fragments):
        name = node.name.value
        if name == "__typename":
            parts.append((key, None, _constant(type_.name)))
            continue
        field = type_.fields[name]
        definition = _definition(field)
        if definition.extensions or definition.permission_classes:
            raise NotCompiled(f"{type_.name}.{name} has extensions or permissions")
        if definition.base_resolver is not None:
            fetch = _fetch(type_, node, field, definition.base_resolver, fetches)
            parts.append(
                (key, None, _fetched(fetch, _writer(field.type, node.selection_set, fragments)))
            )
            continue
        if node.arguments:
            raise NotCompiled(f"{type_.name}.{name} has arguments")
        parts.append(
            (key, definition.python_name, _writer(field.type, node.selection_set, fragments))
        )

    def write(value: Any) -> dict[str, Any]:
        return {
            key: write_part(value if attribute is None else getattr(value, attribute))
            for key, attribute, write_part in parts
        }

    return write


def _fetch(
    type_: GraphQLObjectType,
    node: FieldNode,
    field: GraphQLField,
    resolver: Any,
    fetches: list[Fetch] | None,
) -> Fetch:
    """A field with a resolver, as a `Fetch` of the root's object: only there (elsewhere it
    would run once per item), and only for a coroutine that takes no `info`."""
    if fetches is None:
        raise NotCompiled(f"{type_.name}.{node.name.value} has a resolver, below the root")
    if resolver.info_parameter or resolver.root_parameter or not resolver.is_async:
        raise NotCompiled(f"{type_.name}.{node.name.value} wants more than its object")
    fetch = Fetch(node, field, _arguments(field), resolver.wrapped_func)
    fetches.append(fetch)
    return fetch


def _fetched(fetch: Fetch, write: Write) -> Write:
    return lambda _: write(_FETCHED.get()[fetch])


def _fields(
    type_: GraphQLObjectType, selection_set: SelectionSetNode, fragments: Fragments
) -> list[tuple[str, FieldNode]]:
    """The fields selected on `type_`, fragments on that very type flattened, in order."""
    fields: list[tuple[str, FieldNode]] = []
    for key, node in _flatten(type_, selection_set, fragments):
        if any(key == seen for seen, _ in fields):
            raise NotCompiled("a response key selected twice")
        fields.append((key, node))
    return fields


def _flatten(
    type_: GraphQLObjectType, selection_set: SelectionSetNode, fragments: Fragments
) -> Iterator[tuple[str, FieldNode]]:
    for selection in selection_set.selections:
        if selection.directives:
            raise NotCompiled("directives")
        if isinstance(selection, FieldNode):
            yield (selection.alias or selection.name).value, selection
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != type_.name:
                raise NotCompiled("a fragment on another type")
            yield from _flatten(type_, selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            if fragment.type_condition.name.value != type_.name:
                raise NotCompiled("a fragment on another type")
            yield from _flatten(type_, fragment.selection_set, fragments)
