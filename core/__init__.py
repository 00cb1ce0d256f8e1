"""What every stage shares: config, data sources, model loading, budget, tracking, cost ledger."""
