"""Settlement node: ingests signed meter readings over HTTP, archives them, builds the
deterministic Merkle-sum batch per period and balance group, co-signs it k of n with peer
nodes, commits it to the PeriodLedger, watches peers' batches and proves their frauds."""
