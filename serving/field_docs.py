"""What every property of the OpenAPI document means, with a realistic example: ``"Model.field" -> (description,
example)``.

:func:`serving.openapi.openapi_document` fills each component schema's properties from this table (a model's own
``Field(description=...)`` wins over the text here) and refuses to build the document when a property is missing
from it, so a new field cannot go undocumented. The examples follow one customer, ``C0042``, scored by
``engage-decision-system/3`` (the walk-through in docs/service.md), and must be valid for their property's schema.
"""

from __future__ import annotations

from typing import Any

VERSION = "engage-decision-system/3"
VERSIONS = {"engage-decision-system": "3", "alias": "champion", "run_id": "3f2c9a1b7d4e4f0a9c1e2b3d4f5a6b7c"}
CUSTOMER = "customer_id: the CRM's own identifier of the customer (1-200 characters), unique within a request"
TS = "ISO 8601 text (UTC when no offset is given), between 1900-01-01 and 2200-01-01; never a number"
CUTOFF = ("Score as of this moment (" + TS + "): only history before it counts. Default: now")
OPTIONAL_TEXT = "at most 200 characters; null or absent: unknown"
COLUMN_REQUIRED = "Column form: one entry per touchpoint (same order as `ts`): "
COLUMN = "Column form: one entry per touchpoint (same order as `ts`), null for unknown; absent: all unknown. "
ACTION = "The action id from the catalogue (`/metadata` actions), `<channel>:<offer>`, or `no_contact`"
CHANNEL = "Contact channel of the action (email, sms, push or call); null for no_contact"
OFFER = "Offer of the action (e.g. loyalty_points, or none for a plain contact); null for no_contact"
EIV = ("Expected incremental value of the action: customer value x (churn probability without contact - with it) "
       "- the action's cost, in the value model's currency; null when not computed")

REASON = {"feature": "days_since_last_active", "label": "days since the last active touch", "contribution": 0.62,
          "value": 74.0, "attribute": None}
NBA = {"action": "email:loyalty_points", "channel": "email", "offer": "loyalty_points",
       "expected_incremental_value": 3.8, "propensity": 0.95}
ALTERNATIVE = {"action": "email:none", "channel": "email", "offer": "none", "expected_incremental_value": 1.2}
SCORE = {"customer_id": "C0042", "cold_start": False, "churn_probability": 0.41, "churn_reasons": [REASON],
         "engagement_index": 23.5, "store_ladder": "buyer", "social_ladder": "visitor", "in_market_stage": "none",
         "buy_intent_score": 0.12, "high_engagement_potential": False, "customer_value": 310.0, "value_decile": 8,
         "persona": "frequent buyer, deal hunter", "next_best_action": NBA, "alternatives": [ALTERNATIVE],
         "defense_target": True, "defense_reasons": ["valuable", "churn risk 0.41", "persuadable"],
         "no_contact_reason": None, "model_version": VERSION}

FIELD_DOCS: dict[str, tuple[str, Any]] = {
    # ------------------------------------------------------------------------------------------ requests
    "ScoreRequest.customers": ("The customers to score (1 to 5,000), each with its raw history", [
        {"customer_id": "C0042", "consent_email": True, "attributes": {"region": "north"}, "touchpoints": [
            {"ts": "2024-01-03T10:04:00Z", "channel": "web", "kind": "purchase", "direction": "inbound",
             "amount": 42.5}]}]),
    "ScoreRequest.cutoff": (CUTOFF, "2024-04-01T00:00:00Z"),
    "FeatureScoreRequest.rows": ("The customers to score (1 to 50,000), each as a precomputed feature row",
                                 [{"customer_id": "C0042", "features": {"days_since_last_active": 74.0}}]),
    "FeatureScoreRequest.cutoff": (CUTOFF + "; it labels the answer and the decision log", "2024-04-01T00:00:00Z"),
    "FeatureRow.customer_id": (CUSTOMER, "C0042"),
    "FeatureRow.features": ("Feature name -> value, names as in `/metadata` features (unknown names: 422); "
                            "null or absent: missing", {"days_since_last_active": 74.0, "engagement_index": 23.5}),
    "CustomerIn.customer_id": (CUSTOMER, "C0042"),
    "CustomerIn.signup_ts": ("When the customer signed up (" + TS + "); null: unknown", "2023-11-20T09:30:00Z"),
    "CustomerIn.consent_email": ("The customer agreed to be contacted by e-mail (default false)", True),
    "CustomerIn.consent_sms": ("The customer agreed to be contacted by SMS (default false)", False),
    "CustomerIn.consent_push": ("The customer agreed to push notifications (default false)", False),
    "CustomerIn.consent_call": ("The customer agreed to be called (default false)", False),
    "CustomerIn.attributes": ("Static customer attributes (name -> text, number, true/false or null), at most 200; "
                              "names as in `/metadata` attributes, missing ones are unknown; may not reuse the "
                              "customer's own field names", {"region": "north"}),
    "CustomerIn.touchpoints": ("The customer's raw history: a list of touchpoint objects, or the same fields column "
                               "by column (equal-length lists, faster for long histories); at most 100,000; empty: "
                               "cold start", [
                                   {"ts": "2024-01-03T10:00:00Z", "channel": "web", "kind": "visit",
                                    "direction": "inbound"},
                                   {"ts": "2024-01-03T10:04:00Z", "channel": "web", "kind": "purchase",
                                    "direction": "inbound", "amount": 42.5}]),
    "CustomerIn.outreach": ("Past outreach contacts and holdouts (at most 10,000), read for contact caps and "
                            "fatigue", [{"ts": "2024-02-10T08:00:00Z", "channel": "email", "offer": "loyalty_points",
                                         "campaign_id": "SPRING24", "propensity": 0.95}]),
    "OutreachIn.ts": ("When the contact was made (or withheld, for a holdout); " + TS, "2024-02-10T08:00:00Z"),
    "OutreachIn.channel": ("Channel of the contact; required unless holdout is true", "email"),
    "OutreachIn.offer": ("The offer made (default none: a plain contact)", "loyalty_points"),
    "OutreachIn.campaign_id": ("The campaign the contact belonged to; " + OPTIONAL_TEXT, "SPRING24"),
    "OutreachIn.propensity": ("Probability with which the policy chose this contact, in (0, 1]; for off-policy "
                              "evaluation; null: unknown", 0.95),
    "OutreachIn.holdout": ("True when the customer was deliberately not contacted (a control group)", False),
    "TouchpointIn.ts": ("When the touchpoint happened; " + TS, "2024-01-03T10:04:00Z"),
    "TouchpointIn.channel": ("Where it happened (contract vocabulary, see `/metadata` vocabularies.channel)", "web"),
    "TouchpointIn.kind": ("What happened (contract vocabulary, see `/metadata` vocabularies.kind)", "purchase"),
    "TouchpointIn.direction": ("inbound: the customer acted; outbound: the company reached out", "inbound"),
    "TouchpointIn.duration_s": ("How long it lasted, in seconds (>= 0); null: unknown", 240.0),
    "TouchpointIn.pages": ("Pages or screens seen (>= 0); null: unknown", 6.0),
    "TouchpointIn.amount": ("Money amount (e.g. order value); negative only for kind return (a refund); "
                            "null: none", 42.5),
    "TouchpointIn.discount": ("Discount granted on the amount (>= 0); null: none", 5.0),
    "TouchpointIn.sentiment": ("Sentiment of a review, comment or survey answer in [-1, 1]; null: unknown", 0.6),
    "TouchpointIn.topic": ("Topic of the contact or content; " + OPTIONAL_TEXT, "delivery"),
    "TouchpointIn.device": ("Device used; " + OPTIONAL_TEXT, "mobile"),
    "TouchpointIn.referrer": ("How the customer arrived (contract vocabulary); null: unknown", "email"),
    "TouchpointIn.offer_id": ("The offer involved (e.g. redeemed); " + OPTIONAL_TEXT, "loyalty_points"),
    "TouchpointIn.campaign_id": ("The campaign involved; " + OPTIONAL_TEXT, "SPRING24"),
    "TouchpointIn.product_id": ("The product involved (viewed, added, bought); " + OPTIONAL_TEXT, "P-1187"),
    "TouchpointColumns.ts": ("Column form: when each touchpoint happened, " + TS + " (at most 100,000 entries; "
                             "the other columns must have as many)", ["2024-01-03T10:00:00Z", "2024-01-03T10:04:00Z"]),
    "TouchpointColumns.channel": (COLUMN_REQUIRED + "where each "
                                  "touchpoint happened (contract vocabulary)", ["web", "web"]),
    "TouchpointColumns.kind": (COLUMN_REQUIRED + "what happened "
                               "(contract vocabulary)", ["visit", "purchase"]),
    "TouchpointColumns.direction": (COLUMN_REQUIRED + "inbound or "
                                    "outbound", ["inbound", "inbound"]),
    "TouchpointColumns.duration_s": (COLUMN + "duration in seconds (>= 0)", [60.0, 240.0]),
    "TouchpointColumns.pages": (COLUMN + "pages or screens seen (>= 0)", [3.0, 6.0]),
    "TouchpointColumns.amount": (COLUMN + "money amount, negative only for kind return", [None, 42.5]),
    "TouchpointColumns.discount": (COLUMN + "discount granted (>= 0)", [None, 5.0]),
    "TouchpointColumns.sentiment": (COLUMN + "sentiment in [-1, 1]", [None, None]),
    "TouchpointColumns.topic": (COLUMN + "topic (at most 200 characters)", [None, "delivery"]),
    "TouchpointColumns.device": (COLUMN + "device (at most 200 characters)", ["mobile", "mobile"]),
    "TouchpointColumns.referrer": (COLUMN + "how the customer arrived (contract vocabulary)", ["email", None]),
    "TouchpointColumns.offer_id": (COLUMN + "offer involved (at most 200 characters)", [None, "loyalty_points"]),
    "TouchpointColumns.campaign_id": (COLUMN + "campaign involved (at most 200 characters)", ["SPRING24", None]),
    "TouchpointColumns.product_id": (COLUMN + "product involved (at most 200 characters)", [None, "P-1187"]),
    # ------------------------------------------------------------------------------------------ answers
    "ScoreResponse.model_version": ("The model version that scored the request (`<registered name>/<version>`)",
                                    VERSION),
    "ScoreResponse.model_versions": ("The versions of the model's parts and where it came from (name -> version, "
                                     "alias, run id)", VERSIONS),
    "ScoreResponse.cutoff": ("The moment the customers were scored at (the request's cutoff, or now), UTC",
                             "2024-04-01T00:00:00Z"),
    "ScoreResponse.n_customers": ("How many customers were scored (one result each)", 1),
    "ScoreResponse.results": ("One result per requested customer, in request order", [SCORE]),
    "CustomerScore.customer_id": ("The customer's id, as sent", "C0042"),
    "CustomerScore.cold_start": ("True when the customer had no touchpoint before the cutoff", False),
    "CustomerScore.churn_probability": ("Probability that the customer churns, in [0, 1]; null: no churn model",
                                        0.41),
    "CustomerScore.churn_reasons": ("Reason codes: the features pushing the churn score up, strongest first",
                                    [REASON]),
    "CustomerScore.engagement_index": ("Engagement from 0 to 100: decayed, depth-weighted active touches, scaled "
                                       "on the training population; null: unknown", 23.5),
    "CustomerScore.store_ladder": ("Shopping stage: visitor, interested, almost_buyer or buyer; null: unknown",
                                   "buyer"),
    "CustomerScore.social_ladder": ("Social stage: visitor, engaged, committed or promoter; null: unknown",
                                    "visitor"),
    "CustomerScore.in_market_stage": ("Buying stage over the last 30 days: none, interested, deliberating or "
                                      "evaluating; null: unknown", "none"),
    "CustomerScore.buy_intent_score": ("Buying intent from 0 to 1; null: unknown", 0.12),
    "CustomerScore.high_engagement_potential": ("True for recent activity in the population's top share, past the "
                                                "first ladder rung and not cancelled: worth personal treatment",
                                                False),
    "CustomerScore.customer_value": ("Expected margin over the value model's horizon (null: no value model)", 310.0),
    "CustomerScore.value_decile": ("1 (lowest) to 10 (highest) customer value", 8),
    "CustomerScore.persona": ("The customer's persona (null: no persona model)", "frequent buyer, deal hunter"),
    "CustomerScore.next_best_action": ("The recommended action; null when the policy chose none (see "
                                       "no_contact_reason)", NBA),
    "CustomerScore.alternatives": ("Runner-up actions, best first", [ALTERNATIVE]),
    "CustomerScore.defense_target": ("True for a back-door defense target: valuable, at real churn risk and "
                                     "persuadable", True),
    "CustomerScore.defense_reasons": ("Why the customer is (or is not) a defense target",
                                      ["valuable", "churn risk 0.41", "persuadable"]),
    "CustomerScore.no_contact_reason": ("Why the customer is not contacted (no_consent, cap_reached, budget, "
                                        "negative_uplift, uplift_below_cost, exploration, inactive, "
                                        "fallback_policy); null when an action is recommended", None),
    "CustomerScore.model_version": ("The model version that scored this customer", VERSION),
    "Reason.feature": ("The feature's name (as in `/metadata` features) or an attribute's one-hot column",
                       "days_since_last_active"),
    "Reason.label": ("A readable label; for an attribute it states the customer's value (`region = north`)",
                     "days since the last active touch"),
    "Reason.contribution": ("The feature's contribution to the churn score, in log-odds (> 0 raises it)", 0.62),
    "Reason.value": ("The customer's value: an attribute's category, number or true/false, or a behavioural "
                     "feature's number; null when missing or unknown", 74.0),
    "Reason.attribute": ("The customer attribute the reason is about; null for behavioural features", None),
    "NextBestAction.action": (ACTION, "email:loyalty_points"),
    "NextBestAction.channel": (CHANNEL, "email"),
    "NextBestAction.offer": (OFFER, "loyalty_points"),
    "NextBestAction.expected_incremental_value": (EIV, 3.8),
    "NextBestAction.propensity": ("Probability with which the policy picks this action (log it with the contact "
                                  "for off-policy evaluation); null: unknown", 0.95),
    "Alternative.action": (ACTION, "email:none"),
    "Alternative.channel": (CHANNEL, "email"),
    "Alternative.offer": (OFFER, "none"),
    "Alternative.expected_incremental_value": (EIV, 1.2),
    "MetadataResponse.ready": ("True when a model is loaded and requests are scored", True),
    "MetadataResponse.model_version": ("The version served; null while none is loaded", VERSION),
    "MetadataResponse.model_versions": ("The versions of the model's parts and where it came from (empty while "
                                        "none is loaded)", VERSIONS),
    "MetadataResponse.model_source": ("Where the model comes from: `<kind>:<location>`, kind mlflow, path or bento",
                                      "mlflow:mlflow.yaml"),
    "MetadataResponse.loaded_at": ("When the served model was loaded (UTC); null while none is loaded",
                                   "2024-04-01T06:00:00Z"),
    "MetadataResponse.load_error": ("Why no model could be loaded (the service keeps retrying); null when one is "
                                    "loaded", None),
    "MetadataResponse.reload_error": ("Why the last reload failed, while the version above keeps serving "
                                      "(null: none)", None),
    "MetadataResponse.features": ("The feature names the model reads (the names for /score_features)",
                                  ["days_since_last_active", "engagement_index"]),
    "MetadataResponse.attributes": ("Customer attributes the model reads (missing = unknown)", ["region"]),
    "MetadataResponse.actions": ("The action catalogue the policy chooses from",
                                 [{"id": "email:loyalty_points", "channel": "email", "offer": "loyalty_points",
                                   "cost": 0.3}]),
    "MetadataResponse.vocabularies": ("The data contract's vocabularies: channel, kind, direction, referrer, "
                                      "outreach_channel -> allowed values",
                                      {"direction": ["inbound", "outbound"],
                                       "outreach_channel": ["email", "sms", "push", "call"]}),
    "MetadataResponse.limits": ("Request limits in force: max_body_bytes and max_request_touchpoints (beyond them: "
                                "413), slice_touchpoints (larger requests are scored in slices)",
                                {"max_body_bytes": 67108864, "max_request_touchpoints": 500000,
                                 "slice_touchpoints": 20000}),
    "MetadataResponse.runtime": ("Worker process: garbage-collection counters, pid, request batching, and whether "
                                 "BentoML's per-request timeout timers are cancelled (1) or left to expire (0)",
                                 {"pid": 4121.0, "score_requests": 1830.0, "reloads": 1.0,
                                  "timeout_timers_cancelled": 1.0}),
    "ActionInfo.id": ("The action id: `<channel>:<offer>`, or no_contact", "email:loyalty_points"),
    "ActionInfo.channel": (CHANNEL, "email"),
    "ActionInfo.offer": (OFFER, "loyalty_points"),
    "ActionInfo.cost": ("The cost of one contact with this action, in the value model's currency", 0.3),
    "ReadinessBody.ready": ("Always true here: a model is loaded and requests are scored", True),
    "ReadinessBody.model_version": ("The version this worker serves", VERSION),
    "ReadinessBody.reload_error": ("Why loading a newer champion failed (the version above keeps serving); null "
                                   "when the last reload, if any, succeeded", None),
    "ReloadResponse.status": ("swapped, unchanged, failed or loading", "swapped"),
    "ReloadResponse.model_version": ("The version serving now", "engage-decision-system/4"),
    "ReloadResponse.previous_version": ("The version served before", VERSION),
    "ReloadResponse.error": ("Why the reload failed (status failed), else null", None),
    "ReloadResponse.seconds": ("How long checking and loading took", 3.9),
    # ------------------------------------------------------------------------------------------ errors
    "ValidationErrorBody.error": ("How many problems, for which request model", "1 validation error(s) for "
                                  "ScoreRequest"),
    "ValidationErrorBody.detail": ("Every problem found (at most 50), never quoting the values sent", [
        {"loc": ["customers", 0, "touchpoints", "rows", 2, "sentiment"], "msg": "a value outside [-1, 1]",
         "type": "value_out_of_range"}]),
    "ErrorItem.loc": ("Where: keys and list positions from the top of the body (`rows`/`columns` names the "
                      "touchpoint form)", ["customers", 0, "touchpoints", "rows", 2, "sentiment"]),
    "ErrorItem.msg": ("What is wrong, in the data contract's words", "a value outside [-1, 1]"),
    "ErrorItem.type": ("The kind of problem (pydantic's error type or the service's own)", "value_out_of_range"),
    "MessageBody.error": ("A short summary of the failure", "model not ready"),
    "MessageBody.detail": ("What is wrong and what to do, in one sentence (for 413 the limit and its setting; for "
                           "503 the load error); null: none", "the model is still loading"),
    "UnauthorizedBody.error": ("Why the request was refused (no bearer token, or a wrong one)",
                               "missing or invalid bearer token"),
}
