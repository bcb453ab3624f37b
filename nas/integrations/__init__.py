"""Integrations with other tools: Optuna (:mod:`nas.integrations.optuna`).

Importing this package imports nothing heavy; ``nas.integrations.optuna`` imports Optuna.
"""
