"""What validation found and changed: the report that travels with validated tables.

The report records row counts per table, the duplicates that were resolved (and by which rule) and
warnings such as time-zone-less timestamps read as UTC. Validation leaves it in ``Tables.meta["validation"]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DUPLICATE_RULE = (
    "records sharing a customer_id are merged into one: earliest signup_ts; a consent flag only if every "
    "record consents; other attributes from the last record (file order) where they are present"
)


@dataclass
class ValidationReport:
    """What validation found and changed: row counts per table, duplicates resolved, warnings."""

    source: str = ""
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)
    duplicate_touchpoints_dropped: int = 0
    duplicate_customer_ids: int = 0
    duplicate_customer_records_merged: int = 0
    duplicate_customer_examples: list[str] = field(default_factory=list)
    duplicate_rule: str = DUPLICATE_RULE
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Validation passed (a report only exists for data that passed)."""
        return True

    def to_dict(self) -> dict:
        """A JSON-ready view of the report."""
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable account, one line per fact."""
        lines = [f"valid: {self.source}" if self.source else "valid"]
        for table, n_in in self.rows_in.items():
            n_out = self.rows_out.get(table, n_in)
            lines.append(f"  {table}: {n_out:,} rows" + (f" ({n_in:,} read)" if n_out != n_in else ""))
        if self.duplicate_touchpoints_dropped:
            lines.append(f"  dropped {self.duplicate_touchpoints_dropped:,} exact duplicate touchpoints")
        if self.duplicate_customer_ids:
            ex = ", ".join(self.duplicate_customer_examples)
            lines.append(
                f"  merged {self.duplicate_customer_ids:,} customer ids found in several records "
                f"({self.duplicate_customer_records_merged:,} extra records, e.g. {ex}): "
                f"{self.duplicate_rule}"
            )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        lines.append(f"  checked in {self.seconds:.2f} s")
        return "\n".join(lines)

