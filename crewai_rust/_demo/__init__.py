"""``python -m crewai_rust demo``: one realistic offline crew, stock CrewAI vs patched."""
