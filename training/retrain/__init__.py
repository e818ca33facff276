"""``engage retrain``: the operator's scheduled job (data gates, drift report, challengers, backtest, promotion)."""
