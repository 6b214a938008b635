"""Search policies pi(c | H) behind one interface, and the way from ideas to a queue.

    agents = build_agents(["rules", "tpe", "claude"], params, space)   # registry.py
    plan = plan_round(agents, history, space, round_index=r, seed=s,
                      settings=PlanSettings.from_params(params["agents"]))   # plan.py
    plan.rows, plan.queue, plan.agent_log

Modules: history (H), proposal (what policies return), policy (interface and
random), tpe, rules, llm (with context, extract, providers), sweeps, dedup,
plan (a round), healing (named remediations), registry (params -> agents).
"""
