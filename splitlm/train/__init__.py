"""Split training (models, data, runner, evaluate) and scaling laws (laws, fit, plan)."""
