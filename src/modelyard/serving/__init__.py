"""The device API: dispatch (tiers, weights, targeting, bucketing), auth, telemetry intake."""
