"""Every tuning number of the ranker, each with the reason for its value.

One frozen `Tuning` instance, `TUNING`, is read by the kinds, the scoring and the rule-outs; a number that
appears in two places for the same idea is one field here. Changing a value changes rankings: run the
accuracy tests (`tests/test_accuracy.py`) and the goldens.
"""

from __future__ import annotations

from dataclasses import dataclass

from rca.findings import CALLS_ROSE_RATIO


@dataclass(frozen=True)
class Tuning:
    # --- service fault / network delay ---
    # A slow edge whose extra wait is below this share of the slowest edge's is left out when the slow edges
    # are localised to a service: one slightly slow edge elsewhere should not dilute the edges carrying the fault.
    service_edge_min_share: float = 0.05
    # Calls that vanished from several callers to one callee blame that callee (its failure made them give
    # up) once at least this many callers dropped it; one caller alone may be giving up on its own.
    call_drop_min_callers: int = 2
    # Requests that now stop right after calling a callee blame that callee (it failed them) once at least
    # this many different paths (operations, or callers) stop at it, or its own paths changed too; one path
    # alone may be the caller's own code failing after the callee answered.
    shape_stop_min_paths: int = 2
    # ... with one path only, the callee it stops at is as likely a cause as the caller's own code, but the
    # caller's path is what changed: the callee is listed with half the localisation, below the caller.
    shape_single_stop_localisation: float = 0.5
    # A resource shift on a service that shows no symptom of its own (its calls, latency and errors as
    # before) while other services do: halved, so it ranks below a service whose shift explains the
    # symptoms unless it is at least twice as strong, yet stays listed (the effect may be unobserved).
    no_effect_discount: float = 0.5
    # A caller whose slow calls all go to one callee shares that edge with it; a slowdown shows in every
    # caller above its cause, so the deeper end (the callee) is the likelier and the caller end gets half.
    one_callee_caller_share: float = 0.5

    # --- reporting ---
    # A best score below this is no incident: ordinary noise on a quiet day reaches about 0.2.
    incident_threshold: float = 0.3

    # --- traffic surge ---
    # A value whose share of the extra load is at least twice its share of normal load is concentrated;
    # proportional growth (every browser family, every endpoint a bit) is not a cause.
    surge_min_lift: float = 2.0
    # A value carrying less than this share of the extra load is background, not a cause (also the least
    # share for a traffic spike to count as a surge that errors must lead).
    surge_min_share: float = 0.15
    # A source (or endpoint) carrying at least half of the extra load dominates: it explains the endpoint
    # spikes it lands on, and no broad surge is looked for.
    dominant_share: float = 0.5
    # A service-wide surge needs this many clients to make 80% of the extra load to be "broad" rather
    # than a few callers the per-source findings already name.
    broad_surge_min_clients: int = 20
    # A broad surge names no single culprit: it is less specific than a source.
    broad_surge_specificity: float = 0.6
    # Specificity of a concentrated source or endpoint: this base plus its share, capped at 1.
    surge_specificity_base: float = 0.5
    # Two source findings (an IP and its /24 or user agent) are one caller when their onsets differ by at
    # most this many minutes ...
    same_actor_max_gap_min: float = 3.0
    # ... and their excess requests agree within this ratio (either way: 1 / 0.7 = 1.43).
    same_actor_excess_low: float = 0.7
    same_actor_excess_high: float = 1.43

    # --- dependency slowdown ---
    # Calls to a dependency rose (the same threshold the span detector uses for fan-out and callers).
    calls_rose: float = CALLS_ROSE_RATIO
    # A dependency slowed while its calls rose is likely an effect of that load.
    loaded_dependency_specificity: float = 0.4
    # A dependency that itself waits on another slowed dependency is slow because of it.
    waiting_dependency_specificity: float = 0.3
    # A loaded dependency while a traffic surge is present: the surge explains it.
    explained_by_surge_discount: float = 0.5

    # --- deploy ---
    # A change more than this many buckets after the incident began cannot have started it.
    deploy_max_lag_buckets: int = 2
    # ... or this many minutes, when more (short buckets: the incident's start is estimated a few buckets early).
    deploy_max_lag_min: float = 3.0

    # --- error burst ---
    # Errors are a cause of their own only when they lead the latency and load by this many buckets.
    error_lead_buckets: float = 1.0
    # An error burst has no located culprit beyond the erroring subject.
    error_burst_specificity: float = 0.7
    # Errors beginning with a change that raised errors there, or on a host exhausting a resource: that
    # cause's symptom, kept in the list but well below it.
    explained_error_discount: float = 0.3
    # How far a symptom's onset may be estimated before the change that caused it (buckets, or minutes
    # when more): the change's own before-window shows no such symptom, and onsets fitted on sparse
    # buckets date a rise early. Used for the errors a change explains and for its precedence.
    explained_error_change_buckets: float = 4.0
    explained_error_change_min: float = 3.0

    # --- scoring ---
    # Magnitude factor of a ratio at or below 1 (no growth): weak but not zero.
    flat_magnitude_factor: float = 0.1
    # Magnitude factor = base + log10(ratio), capped at 1: x1.8 gives 0.5, x5.6 and more give 1.
    magnitude_factor_base: float = 0.25
    # A cause starting up to this many buckets after the first symptom keeps full precedence ...
    precedence_grace_buckets: float = 1.0
    # ... and loses precedence as exp(-lag / this) beyond it (three buckets late: about 0.37).
    precedence_decay_buckets: float = 3.0
    # A candidate without an onset is neither early nor late.
    unknown_onset_precedence: float = 0.5
    # A cause explains the symptoms that start no earlier than this many buckets before it (onsets
    # are estimates).
    explains_before_buckets: float = 2.0
    # Share credited to a candidate whose findings state no share (resources, dependencies, changes).
    default_share: float = 0.8
    # Corroboration by number of independent signals: one 0.8, two 0.92, three or more 1.
    corroboration_one_signal: float = 0.8
    corroboration_two_signals: float = 0.92
    # The share (or coverage of the symptoms) weighs the score as floor + (1 - floor) * share.
    share_floor: float = 0.6
    # The strongest symptoms (at most this many) date the start of the symptoms.
    symptoms_dating_count: int = 5
    # A candidate starting at least this many buckets after another one at least `effect_rival_share`
    # as strong is discounted by `effect_discount` as that one's likely effect (onsets are estimated
    # to the second, so half a bucket is a lag).
    effect_min_lag_buckets: float = 0.5
    effect_rival_share: float = 0.5
    effect_discount: float = 0.6

    # --- report ---
    evidence_per_hypothesis: int = 6  # evidence lines shown per hypothesis
    explains_per_hypothesis: int = 8  # symptom labels listed per hypothesis
    timeline_symptoms: int = 8  # distinct symptoms on the timeline
    timeline_causes: int = 3  # top hypotheses on the timeline
    largest_deviations: int = 5  # findings listed when no incident stands out


TUNING = Tuning()
