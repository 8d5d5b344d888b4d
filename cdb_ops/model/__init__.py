"""Plain data shared by every layer: labels, resource specs, engine facts, the plan, results. No I/O."""
