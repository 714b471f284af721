"""Per actor-day features: base counts from kql/ and behaviour baselines on top of them."""
