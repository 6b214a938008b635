"""expsearch: LLM-guided combinatorial experiment search."""
