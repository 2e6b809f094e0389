"""The client's typed job model (``mobius_preview_client.model``) says what the schema says:
the same keys, the same required ones, the same enums, one source kind per schema source."""

from __future__ import annotations

import typing
from typing import Any, get_args

from mobius_preview_client import model
from mobius_preview_client.contract import validation


def keys(typed: Any) -> tuple[set[str], set[str]]:
    """(every key, the required keys) of a TypedDict."""
    return set(typed.__annotations__), set(typed.__required_keys__)


def test_the_job_has_the_schemas_keys_and_required_keys() -> None:
    schema = validation.schema()
    assert keys(model.PreviewJob) == (set(schema["properties"]), set(schema["required"]))


def test_an_output_has_the_schemas_keys_required_keys_and_enums() -> None:
    output = validation.schema()["$defs"]["output"]
    assert keys(model.Output) == (set(output["properties"]), set(output["required"]))
    assert set(get_args(model.Format)) == set(output["properties"]["format"]["enum"])
    assert set(get_args(model.Fit)) == set(output["properties"]["fit"]["enum"])


def test_each_source_kind_is_one_of_the_schemas_sources_and_holds_only_it() -> None:
    sources = validation.schema()["properties"]["source"]
    kinds = [keys(kind) for kind in get_args(model.Source)]
    assert sorted(kinds) == sorted(({name}, {name}) for name in sources["properties"])
    assert sources["minProperties"] == sources["maxProperties"] == 1


def test_the_model_is_what_a_type_checker_reads() -> None:
    hints = typing.get_type_hints(model.PreviewJob)
    assert hints["outputs"] == list[model.Output]
    assert (validation.PACKAGE / "py.typed").is_file()  # PEP 561: the package (and the wheel) is typed
