"""Training one configuration of the space on cached features, and its evaluation."""
