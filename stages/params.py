"""params.yaml, read safely and validated before a stage does work, for the keys it declares.

Only those: a bad value of one stage's param never stops another stage."""

import os
import re
from collections.abc import Hashable, Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from stages.exits import UserError

PARAMS_FILE = "params.yaml"
LOSSES = ("log_loss", "hinge", "modified_huber", "squared_hinge", "perceptron")  # for sgd.loss


class Section(BaseModel):
    # strict: `epochs: "5"` or `epochs: true` is a mistake, not a number.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _check_source(value: Any) -> Any:
    has_scheme = isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value)
    if has_scheme and not re.match(r"^https?://", value):
        raise ValueError("a source must be an http(s) URL or a local directory path")
    return value


class Download(Section):
    sources: list[Annotated[str, Field(min_length=1), BeforeValidator(_check_source)]] = Field(
        min_length=1,
        description="a list of at least 1 item, each an http(s) URL or a local directory")
    retries: int = Field(ge=1, le=10, description="an integer from 1 to 10")
    timeout: float = Field(gt=0, le=600, description="a number in (0, 600]")


class Split(Section):
    test_size: float = Field(gt=0, lt=1, description="a number in (0, 1)")


class SGD(Section):
    # 'log': scikit-learn < 1.1's spelling of log_loss
    loss: Annotated[Literal[LOSSES], BeforeValidator(lambda v: "log_loss" if v == "log" else v)] = (
        Field(description="one of " + ", ".join(map(repr, LOSSES))))
    max_iter: int = Field(ge=1, le=10_000, description="an integer from 1 to 10000")
    folds: int = Field(ge=2, le=20, description="an integer from 2 to 20")


class Model(Section):
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        max_length=8, description="a list of up to 8 items, each an integer from 1 to 4096")
    activation: Literal["relu", "tanh", "sigmoid", "elu", "gelu"] = Field(
        description="one of 'relu', 'tanh', 'sigmoid', 'elu', 'gelu'")
    optimizer: Literal["rmsprop", "adam", "sgd"] = Field(
        description="one of 'rmsprop', 'adam', 'sgd'")
    learning_rate: float = Field(gt=0, le=10, description="a number in (0, 10]")
    dropout: float = Field(ge=0, lt=1, description="a number in [0, 1)")


class Params(Section):  # every key of params.yaml, each with what it allows (the messages quote it)
    seed: int = Field(ge=0, le=2**32 - 1, description="an integer from 0 to 4294967295")
    max_samples: int | None = Field(ge=500, description="null or an integer >= 500")  # null: all
    epochs: int = Field(ge=1, le=1000, description="an integer from 1 to 1000")
    batch_size: int = Field(ge=1, le=60_000, description="an integer from 1 to 60000")
    download: Download
    split: Split
    sgd: SGD
    model: Model


SCHEMA = Params.model_fields


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice, as DVC does.

    SafeLoader keeps the last: `epochs: 5` then `epochs: 50` trains 50 while the eye reads 5."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in first_line:  # unhashable: SafeLoader's message
                first = first_line[key]
                raise yaml.constructor.ConstructorError(
                    problem=f"key {key!r} is given twice (first at line {first}); keep one",
                    problem_mark=key_node.start_mark)
            if isinstance(key, Hashable):
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read(path: str | os.PathLike = PARAMS_FILE) -> dict:
    """The mapping in `path` as written, not validated; UserError if it is not one."""
    try:
        with open(path) as file:
            raw = yaml.load(file, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise UserError(f"{path}: YAML syntax error{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of keys to values, got {type(raw).__name__}")
    return raw


def load(*keys: str, path: str | os.PathLike = PARAMS_FILE) -> Any:
    """The validated values of `keys` in `path`, as attributes (`p.epochs`, `p.sgd.loss`)."""
    raw = read(path)
    fields = {key: (SCHEMA[key].annotation, SCHEMA[key]) for key in keys}
    model = create_model("Params", __base__=Section, **fields)
    try:
        return model.model_validate({key: raw[key] for key in keys if key in raw})
    except ValidationError as error:
        raise UserError(describe(error.errors()[0], path)) from None


def describe(problem: dict, path: str | os.PathLike) -> str:
    """One line for pydantic's `problem`: the key, the value, and what is allowed."""
    key = ".".join(map(str, problem["loc"]))
    fields, allowed = Params.model_fields, ""
    for part in problem["loc"]:  # down to the field that says what it allows (not a list index)
        if (field := fields.get(part)) is not None:
            fields = getattr(field.annotation, "model_fields", {})  # a section's keys, or none
            allowed = field.description or "a mapping of " + ", ".join(fields)
    allowed = f" (allowed: {allowed})" if allowed else ""
    if problem["type"] == "missing":
        return f"{path}: {key} is missing{allowed}"
    if problem["type"] == "extra_forbidden":
        return f"{path}: unknown key {key}"
    why = problem["msg"].removeprefix("Value error, ")
    return f"{path}: {key} = {problem['input']!r} is not allowed: {why}{allowed}"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"sgd": {"folds": 2}} → {"sgd.folds": 2}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
