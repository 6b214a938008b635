"""The paper generated from the analyses: tables (and, later, figures and values.tex)."""
