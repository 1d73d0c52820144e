"""params.yaml: read safely, and validated key by key before any stage does work.

Each stage asks only for the keys it declares in dvc.yaml, so a bad value of one stage's
param never stops another stage, and every message names the key, the value and what is allowed.
"""

import os
import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from stages.cli import UserError

PARAMS_FILE = "params.yaml"


class Section(BaseModel):
    # strict: `epochs: "5"` or `epochs: true` is a mistake, not a number.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _check_source(value: Any) -> Any:
    if isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        if not re.match(r"^https?://", value):
            raise ValueError("a source must be an http(s) URL or a local directory path")
    return value


# A string's allowed form is not a bound, so it is the one type described in words.
Source = Annotated[
    str, Field(min_length=1, description="an http(s) URL or a local directory"),
    BeforeValidator(_check_source),
]


class Download(Section):
    sources: list[Source] = Field(min_length=1)
    retries: int = Field(ge=1, le=10)
    timeout: float = Field(gt=0, le=600)


class Split(Section):
    test_size: float = Field(gt=0, lt=1)


def _alias_log(value: Any) -> Any:
    return "log_loss" if value == "log" else value  # the spelling of scikit-learn < 1.1


class SGD(Section):
    loss: Annotated[
        Literal["log_loss", "hinge", "modified_huber", "squared_hinge", "perceptron"],
        BeforeValidator(_alias_log),
    ]
    max_iter: int = Field(ge=1, le=10_000)
    folds: int = Field(ge=2, le=20)


class Model(Section):
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(max_length=8)
    activation: Literal["relu", "tanh", "sigmoid", "elu", "gelu"]
    optimizer: Literal["rmsprop", "adam", "sgd"]
    learning_rate: float = Field(gt=0, le=10)
    dropout: float = Field(ge=0, lt=1)


SCHEMA: dict[str, Any] = {
    "seed": Annotated[int, Field(ge=0, le=2**32 - 1)],
    "max_samples": Annotated[int | None, Field(ge=500)],  # null: all samples
    "epochs": Annotated[int, Field(ge=1, le=1000)],
    "batch_size": Annotated[int, Field(ge=1, le=60_000)],
    "download": Download,
    "split": Split,
    "sgd": SGD,
    "model": Model,
}


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping, as DVC does.

    SafeLoader keeps the last of two equal keys without a word: `epochs: 5` then `epochs: 50`
    would train 50 epochs while the eye reads 5.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        problem=f"key {key!r} is given twice (first at line {first_line[key]}); "
                        "keep one", problem_mark=key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: SafeLoader's own message follows
                break
        return super().construct_mapping(node, deep=deep)


def load(*keys: str, path: str | os.PathLike = PARAMS_FILE) -> Any:
    """Read `path` and return the validated values of `keys` as attributes (`p.epochs`, `p.sgd.loss`)."""
    try:
        with open(path) as file:
            raw = yaml.load(file, Loader=UniqueKeyLoader)  # safe: a SafeLoader
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise UserError(f"{path}: YAML syntax error{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of keys to values, got {type(raw).__name__}")

    model = create_model(
        "Params", __config__=ConfigDict(strict=True), **{key: (SCHEMA[key], ...) for key in keys}
    )
    try:
        return model.model_validate({key: raw[key] for key in keys if key in raw})
    except ValidationError as error:
        raise UserError(describe(error, raw, path)) from None


def describe(error: ValidationError, raw: dict[str, Any], path: str | os.PathLike) -> str:
    """One line for the first problem: key, value, and what is allowed."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return f"{path}: {key} is missing{_allowed(first['loc'])}"
    if first["type"] == "extra_forbidden":
        return f"{path}: unknown key {key}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{path}: {key} = {_lookup(raw, first['loc'])!r} is not allowed: {message}{_allowed(first['loc'])}"


def _lookup(raw: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            break
    return raw


def _allowed(loc: tuple) -> str:
    """What the schema allows at `loc`, as '(allowed: ...)', derived from its type and bounds."""
    annotation: Any = SCHEMA.get(loc[0])
    if len(loc) > 1 and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(loc[1]))
        if field is None:
            return ""
        return f" (allowed: {allowed(field.annotation, tuple(field.metadata))})"
    return f" (allowed: {allowed(annotation)})"


def allowed(annotation: Any, constraints: tuple = ()) -> str:
    """'an integer from 1 to 1000', 'a number in (0, 1)', "one of 'adam', 'sgd'": what a type allows."""
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        description = next((m.description for m in metadata if getattr(m, "description", None)), None)
        if description:
            return description
        found = [c for m in metadata for c in getattr(m, "metadata", [m])]  # a Field's constraints
        return allowed(base, (*constraints, *found))
    bounds = {
        name: getattr(c, name) for c in constraints
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length") if hasattr(c, name)
    }
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if get_origin(annotation) in (Union, UnionType) and type(None) in args:
        (other,) = [a for a in args if a is not type(None)]
        return "null or " + allowed(other, constraints)
    if get_origin(annotation) is list:
        size = ("a list of up to {max_length} items" if "max_length" in bounds
                else "a list of at least {min_length} item" if "min_length" in bounds else "a list")
        return size.format(**bounds) + ", each " + allowed(args[0])
    if annotation is int:
        if "ge" in bounds and "le" in bounds:
            return f"an integer from {bounds['ge']} to {bounds['le']}"
        return "an integer" + (f" >= {bounds['ge']}" if "ge" in bounds else "")
    if annotation is float:
        low = f"({bounds['gt']}" if "gt" in bounds else f"[{bounds['ge']}" if "ge" in bounds else "(-inf"
        high = f"{bounds['lt']})" if "lt" in bounds else f"{bounds['le']}]" if "le" in bounds else "inf)"
        return f"a number in {low}, {high}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping of " + ", ".join(annotation.model_fields)
    return getattr(annotation, "__name__", str(annotation))
