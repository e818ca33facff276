"""Request and response models of the scoring service, built from the data contract's vocabularies.

The vocabularies (channels, kinds, directions, referrers, outreach channels) come from
:mod:`features.contract.schema`, so a request that passes these models is a valid contract table. Touchpoints
may be sent row by row (a list of objects, the natural CRM shape) or column by column (an object of
equal-length lists, about eight times faster to parse for long histories). Models never echo input
values in their error messages (``hide_input_in_errors``): errors name the field and the problem only,
so customer data does not reach the server log.

Value rules (numeric ranges, the refund rule for negative amounts, timestamps as text) are the data contract's
own declarations (:mod:`features.contract.values`), so the service rejects exactly what batch validation
rejects, in the same words. Timestamps must be ISO 8601 text: pydantic would otherwise read a JSON number as
Unix time, which the contract never does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.contract.schema import CHANNELS, DIRECTIONS, KINDS, OUTREACH_CHANNELS, REFERRERS
from features.contract.values import (
    NEGATIVE_AMOUNT,
    NUMBER_AS_TIMESTAMP,
    OUTREACH_RANGES,
    TIMESTAMP_HINT,
    TOUCHPOINT_RANGES,
    ValueRange,
    amount_allowed,
    is_number_text,
    negative_amount_misused,
)
from serving.iso_kernel import parse_utc_iso

# pandas stores timestamps as int64 nanoseconds (years 1677-2262); keep well inside that range.
MIN_TS = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2200, 1, 1, tzinfo=UTC)
MAX_CUSTOMERS = 5_000
MAX_TOUCHPOINTS = 100_000
MAX_ID = 200

Channel = Literal[CHANNELS]
Kind = Literal[KINDS]
Direction = Literal[DIRECTIONS]
Referrer = Literal[REFERRERS]
OutreachChannel = Literal[OUTREACH_CHANNELS]


MIN_NS = int(MIN_TS.timestamp()) * 10**9
MAX_NS = int(MAX_TS.timestamp()) * 10**9


def epoch_ns(values: list[datetime]) -> np.ndarray:
    """Timestamps as int64 UTC nanoseconds; naive timestamps are UTC."""
    return (
        np.fromiter(
            (round((v if v.tzinfo is not None else v.replace(tzinfo=UTC)).timestamp() * 1e6) for v in values),
            dtype=np.int64,
            count=len(values),
        )
        * 1000
    )


def parse_ts_column(values: list[str]) -> np.ndarray:
    """ISO 8601 strings → int64 UTC nanoseconds; naive = UTC. Names the first bad entry."""
    import pandas as pd

    ns = parse_utc_iso(values)  # the common shape, compiled; anything else goes to pandas
    if ns is not None and not np.flatnonzero((ns < MIN_NS) | (ns >= MAX_NS)).size:
        return ns
    ok = True
    try:
        # The list as it is: wrapping it in an object Index first costs a third of the parse.
        ns = pd.to_datetime(values, format="ISO8601", utc=True, cache=False).as_unit("ns").asi8
    except (ValueError, OverflowError):
        ok = False
    if ok:
        bad = np.flatnonzero((ns < MIN_NS) | (ns >= MAX_NS))  # NaT is int64 min, so caught here
        if not bad.size:
            return ns
    for i, v in enumerate(values):
        try:
            ts = pd.Timestamp(v)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            if not (MIN_NS <= ts.value < MAX_NS):
                raise ValueError
        except (ValueError, OverflowError, TypeError):
            raise ValueError(
                f"ts[{i}]: not an ISO 8601 timestamp between 1900-01-01 and 2200-01-01"
            ) from None
    raise ValueError("ts: timestamps could not be parsed as one column (mixed formats?)")


def _utc(value: datetime) -> datetime:
    """Naive timestamps are UTC; every timestamp must lie in 1900..2200."""
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. year 1 with a positive offset falls before datetime.min in UTC
        raise ValueError("timestamp must lie between 1900-01-01 and 2200-01-01") from None
    if not MIN_TS <= value < MAX_TS:
        raise ValueError("timestamp must lie between 1900-01-01 and 2200-01-01")
    return value


def _timestamp_input(value: Any) -> Any:
    """ISO 8601 text or a datetime; never a number, nor a number written as text (pydantic's Unix time)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if is_number_text(value):
            raise PydanticCustomError("timestamp_number", NUMBER_AS_TIMESTAMP)
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError("timestamp_number", NUMBER_AS_TIMESTAMP)
    raise PydanticCustomError("timestamp_type", f"not a timestamp ({TIMESTAMP_HINT})")


def _in_range(rng: ValueRange) -> Any:
    """A finite number inside a contract range, documented as JSON Schema bounds, rejected in the contract's
    words (``rng.problem``)."""

    def check(value: float) -> float:
        if not rng.allows(value):
            raise PydanticCustomError("value_out_of_range", rng.problem)
        return value

    return Annotated[float, Field(allow_inf_nan=False, json_schema_extra=rng.json_schema()), AfterValidator(check)]


Timestamp = Annotated[datetime, BeforeValidator(_timestamp_input), AfterValidator(_utc)]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Text = Annotated[str, Field(max_length=MAX_ID)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Duration = _in_range(TOUCHPOINT_RANGES["duration_s"])
Pages = _in_range(TOUCHPOINT_RANGES["pages"])
Discount = _in_range(TOUCHPOINT_RANGES["discount"])
Sentiment = _in_range(TOUCHPOINT_RANGES["sentiment"])
Propensity = _in_range(OUTREACH_RANGES["propensity"])

STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True)


class TouchpointIn(BaseModel):
    """One touchpoint of a customer's history (the customer is the enclosing object)."""

    model_config = STRICT
    ts: Timestamp
    channel: Channel
    kind: Kind
    direction: Direction
    duration_s: Duration | None = None
    pages: Pages | None = None
    amount: Finite | None = Field(default=None, description="negative only for kind 'return' (a refund)")
    discount: Discount | None = None
    sentiment: Sentiment | None = None
    topic: Text | None = None
    device: Text | None = None
    referrer: Referrer | None = None
    offer_id: Text | None = None
    campaign_id: Text | None = None
    product_id: Text | None = None

    @model_validator(mode="after")
    def _refund_rule(self) -> TouchpointIn:
        if not amount_allowed(self.amount, self.kind):
            raise PydanticCustomError("negative_amount", NEGATIVE_AMOUNT)
        return self


TOUCHPOINT_FIELDS: tuple[str, ...] = tuple(TouchpointIn.model_fields)
NUMERIC_FIELDS: tuple[str, ...] = ("duration_s", "pages", "amount", "discount", "sentiment")
STRING_FIELDS: tuple[str, ...] = ("topic", "device", "offer_id", "campaign_id", "product_id")


class TouchpointColumns(BaseModel):
    """A customer's touchpoints column by column: every given list has one entry per touchpoint."""

    model_config = STRICT
    # ISO 8601 text, parsed as a whole column by pandas in _check (5x faster than per-element parsing).
    ts: list[Annotated[str, Field(max_length=40)]] = Field(max_length=MAX_TOUCHPOINTS)
    channel: list[Channel]
    kind: list[Kind]
    direction: list[Direction]
    duration_s: list[Duration | None] | None = None
    pages: list[Pages | None] | None = None
    amount: list[Finite | None] | None = Field(default=None, description="negative only for kind 'return'")
    discount: list[Discount | None] | None = None
    sentiment: list[Sentiment | None] | None = None
    topic: list[Text | None] | None = None
    device: list[Text | None] | None = None
    referrer: list[Referrer | None] | None = None
    offer_id: list[Text | None] | None = None
    campaign_id: list[Text | None] | None = None
    product_id: list[Text | None] | None = None
    _ts_ns: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> TouchpointColumns:
        n = len(self.ts)
        for name in TOUCHPOINT_FIELDS:
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} entries but 'ts' has {n}")
        if self.amount is not None:
            bad = np.flatnonzero(negative_amount_misused(np.array(self.amount, dtype=np.float64), self.kind))
            if bad.size:
                raise PydanticCustomError("negative_amount", f"amount[{int(bad[0])}]: {NEGATIVE_AMOUNT}")
        self._ts_ns = parse_ts_column(self.ts)
        return self

    @property
    def ts_ns(self) -> np.ndarray:
        """The timestamps as int64 UTC nanoseconds."""
        return self._ts_ns

    def __len__(self) -> int:
        return len(self.ts)


class OutreachIn(BaseModel):
    """A past outreach contact (or a holdout: deliberately not contacted)."""

    model_config = STRICT
    ts: Timestamp
    channel: OutreachChannel | None = None
    offer: Id = "none"
    campaign_id: Text | None = None
    propensity: Propensity | None = None
    holdout: bool = False

    @model_validator(mode="after")
    def _channel_unless_holdout(self) -> OutreachIn:
        if self.channel is None and not self.holdout:
            raise ValueError("channel is required unless holdout is true")
        return self


def _touch_shape(value: Any) -> str:
    return "rows" if isinstance(value, list) else "columns"


Touchpoints = Annotated[
    Annotated[list[TouchpointIn], Tag("rows")] | Annotated[TouchpointColumns, Tag("columns")],
    Discriminator(_touch_shape),
]

AttributeValue = Annotated[str, Field(max_length=MAX_ID)] | bool | Finite | None


class CustomerIn(BaseModel):
    """One customer: profile, consents, static attributes and raw history (may be empty: cold start)."""

    model_config = STRICT
    customer_id: Id
    signup_ts: Timestamp | None = None
    consent_email: bool = False
    consent_sms: bool = False
    consent_push: bool = False
    consent_call: bool = False
    attributes: dict[Annotated[str, Field(min_length=1, max_length=64)], AttributeValue] = Field(
        default_factory=dict, max_length=200
    )
    touchpoints: Touchpoints = Field(default_factory=list)
    outreach: list[OutreachIn] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _limits(self) -> CustomerIn:
        if len(self.touchpoints) > MAX_TOUCHPOINTS:
            raise ValueError(f"at most {MAX_TOUCHPOINTS} touchpoints per customer")
        reserved = {
            "customer_id",
            "signup_ts",
            "consent_email",
            "consent_sms",
            "consent_push",
            "consent_call",
        }
        clash = sorted(reserved & set(self.attributes))
        if clash:
            raise ValueError(f"attributes may not use contract column names: {', '.join(clash)}")
        return self


def _check_unique_ids(field: str, ids: list[str]) -> None:
    """Reject a request naming one customer twice (the answer would be ambiguous), naming both places."""
    seen: dict[str, int] = {}
    for i, cid in enumerate(ids):
        if cid in seen:
            raise ValueError(f"{field}[{i}].customer_id duplicates {field}[{seen[cid]}]")
        seen[cid] = i


class _OneItemPerCustomer(BaseModel):
    """A request whose list field ``items_field`` holds one item per customer (each with a ``customer_id``)."""

    model_config = STRICT
    items_field: ClassVar[str]

    @model_validator(mode="after")
    def _unique_ids(self) -> _OneItemPerCustomer:
        _check_unique_ids(self.items_field, [item.customer_id for item in getattr(self, self.items_field)])
        return self


class ScoreRequest(_OneItemPerCustomer):
    """Score customers from their raw histories at a cutoff (default: now)."""

    items_field: ClassVar[str] = "customers"
    customers: list[CustomerIn] = Field(min_length=1, max_length=MAX_CUSTOMERS)
    cutoff: Timestamp | None = None


class FeatureRow(BaseModel):
    """A precomputed feature row (names as in the metadata's feature list; null = missing)."""

    model_config = STRICT
    customer_id: Id
    features: dict[Annotated[str, Field(min_length=1, max_length=MAX_ID)], Finite | None]


class FeatureScoreRequest(_OneItemPerCustomer):
    """Score customers from precomputed feature rows."""

    items_field: ClassVar[str] = "rows"
    rows: list[FeatureRow] = Field(min_length=1, max_length=50_000)
    cutoff: Timestamp | None = None


class EmptyRequest(BaseModel):
    """No parameters."""

    model_config = STRICT


# ------------------------------------------------------------------------------------------ responses


class Reason(BaseModel):
    """A reason code for the churn score: the feature, its readable label, its contribution and the customer's value.

    A customer attribute is one reason (its one-hot columns summed) whose label states the customer's own
    value (``Contract = Month-to-month``). Models trained before values were added give ``value`` and
    ``attribute`` as null.
    """

    feature: str
    label: str
    contribution: float
    value: bool | float | str | None = Field(
        default=None,
        description="The customer's value: an attribute's category, number or true/false, or a behavioural "
        "feature's number; null when missing or unknown",
    )
    attribute: str | None = Field(
        default=None, description="The customer attribute the reason is about; null for behavioural features"
    )


class NextBestAction(BaseModel):
    """The recommended action (``no_contact`` has no channel or offer)."""

    action: str
    channel: str | None
    offer: str | None
    expected_incremental_value: float | None
    propensity: float | None


class Alternative(BaseModel):
    """A runner-up action."""

    action: str
    channel: str | None
    offer: str | None
    expected_incremental_value: float | None


class CustomerScore(BaseModel):
    """Everything the CRM shows for one customer."""

    customer_id: str
    cold_start: bool = Field(description="True when the customer had no touchpoint before the cutoff")
    churn_probability: float | None
    churn_reasons: list[Reason]
    engagement_index: float | None
    store_ladder: str | None
    social_ladder: str | None
    in_market_stage: str | None
    buy_intent_score: float | None
    high_engagement_potential: bool
    customer_value: float | None = Field(
        default=None, description="Expected margin over the value model's horizon (null: no value model)"
    )
    value_decile: int | None = Field(default=None, description="1 (lowest) to 10 (highest) customer value")
    persona: str | None = Field(default=None, description="The customer's persona (null: no persona model)")
    next_best_action: NextBestAction | None
    alternatives: list[Alternative]
    defense_target: bool
    defense_reasons: list[str]
    no_contact_reason: str | None
    model_version: str


class ScoreResponse(BaseModel):
    """Scores for every requested customer, in request order, with the model version(s) used."""

    model_version: str
    model_versions: dict[str, str]
    cutoff: datetime
    n_customers: int
    results: list[CustomerScore]


class ActionInfo(BaseModel):
    """One action of the catalogue."""

    id: str
    channel: str | None
    offer: str | None
    cost: float


class MetadataResponse(BaseModel):
    """What the service is serving."""

    ready: bool
    model_version: str | None
    model_versions: dict[str, str]
    model_source: str | None
    loaded_at: datetime | None
    load_error: str | None
    reload_error: str | None = Field(
        default=None, description="Why the last reload failed, while the version above keeps serving (null: none)"
    )
    features: list[str]
    attributes: list[str] = Field(description="Customer attributes the model reads (missing = unknown)")
    actions: list[ActionInfo]
    vocabularies: dict[str, list[str]]
    limits: dict[str, int] = Field(
        description="Request limits in force: max_body_bytes and max_request_touchpoints (beyond them: 413), "
        "slice_touchpoints (larger requests are scored in slices)"
    )
    runtime: dict[str, float] = Field(
        description="Worker process: garbage-collection counters, pid, request batching, and whether BentoML's "
        "per-request timeout timers are cancelled (1) or left to expire (0)"
    )
