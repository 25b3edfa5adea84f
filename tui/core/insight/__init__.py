"""What the journal's numbers mean for the user: findings, a forecast, the agent's own gauge."""
