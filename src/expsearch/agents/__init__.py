"""Search policies pi(c | H) behind one interface, and the way from ideas to a queue.

    settings = agent_settings(params["agents"])                          # expsearch.settings
    agents = build_agents(["rules", "tpe", "claude"], settings, space)   # registry.py
    plan = plan_round(agents, history, space, round_index=r, seed=s, settings=settings.plan,
                      fallback=build_fallback(settings, space))             # plan.py
    plan.rows, plan.queue, plan.agent_log, plan.warnings

Modules: history (H), proposal (what policies return), policy (interface and
random), tpe, rules, llm (with context, extract, providers, untrusted: the
limits on an answer), sweeps, dedup, plan (a round; rows of its table,
budget: fair shares, fallback: unused budget), healing (named
remediations), names (who may propose), registry (settings -> agents).
"""
