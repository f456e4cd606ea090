"""The business rules behind the composed fields (cross-sell, value tiers, agent matching, catalog),
read from the `insights:` section of gateway.yaml (pydantic v2: unknown keys and out-of-range values
refused, with the key path).

`insights.cross_sell` holds the framework's own setting (`suggestions`) plus the settings the
declarations' blockers read (`insights.settings` of a declaration file, e.g. a priority or a number of
days): `insights_model` makes the model of the whole section with those settings typed, so a bad
value is refused at its key like any other.
"""

from __future__ import annotations

import enum
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrossSellRules(Rules):
    """`insights.cross_sell`: the declared settings are added to it (`insights_model`)."""

    suggestions: int = Field(3, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, raw: Any) -> Any:
        """An enum setting may be written as a member's name in any case (`normal`, `NORMAL`)."""
        if not isinstance(raw, dict):
            return raw
        return {k: enum_member(cls.model_fields[k].annotation, v) if k in cls.model_fields else v
                for k, v in raw.items()}


def enum_member(hint: Any, value: Any) -> Any:
    """The member of enum `hint` named (any case) or valued `value`; `value` as it is otherwise (pydantic
    then refuses it, listing the values)."""
    members = next((h for h in (hint, *typing.get_args(hint)) if isinstance(h, type) and issubclass(h, enum.Enum)),
                   None)
    if members is None or not isinstance(value, str):
        return value
    return next((m for m in members if m.name.lower() == value.lower() or m.value == value), value)


class ValueTier(Rules):
    tier: str
    min_value: float = Field(ge=0)  # lifetime value in the reporting currency...
    min_orders_12m: int = Field(ge=0)  # ...or purchases in the last 365 days, on any channel


class ValueRules(Rules):
    currency: str = "EUR"
    rates: dict[str, float] = {"EUR": 1.0}  # to the reporting currency
    tiers: list[ValueTier] = [ValueTier(tier="TOP", min_value=8000, min_orders_12m=8),
                              ValueTier(tier="HIGH", min_value=3000, min_orders_12m=4),
                              ValueTier(tier="MEDIUM", min_value=500, min_orders_12m=1)]


class AgentRules(Rules):
    topics: dict[str, list[str]] = {}  # skill -> words that call for it
    weights: dict[str, float] = {"skill": 3, "language": 2, "product": 1, "good_history": 1.5, "bad_history": -1}


class Product(Rules):
    name: str
    category: str


class Insights(Rules):
    cross_sell: CrossSellRules = CrossSellRules()
    value: ValueRules = ValueRules()
    agents: AgentRules = AgentRules()
    catalog: dict[str, Product] = {}  # sku -> product
    complements: dict[str, list[str]] = {}  # owned category -> skus that go with it

    @field_validator("cross_sell", "value", "agents", "catalog", "complements", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value  # a section written with no entries


def insights_model(settings: dict[str, tuple[Any, FieldInfo]]) -> type[Insights]:
    """The model of the `insights:` section with these settings (name -> (type, pydantic Field, with
    its default)) added to `insights.cross_sell`."""
    if not settings:
        return Insights
    cross_sell: type[CrossSellRules] = create_model(  # type: ignore[call-overload]
        "CrossSellRules", __base__=CrossSellRules, **settings)
    return create_model("Insights", __base__=Insights,  # type: ignore[call-overload,no-any-return]
                        cross_sell=(cross_sell, Field(default_factory=cross_sell)))


def parse_insights(raw: dict[str, Any], model: type[Insights] = Insights) -> Insights:
    """The `insights:` section; a pydantic ValidationError names the key path of each problem."""
    return model.model_validate(raw or {})
