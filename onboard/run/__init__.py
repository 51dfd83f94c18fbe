"""The run of a scene: budgets and board figures, the plan, and the strip loop."""
