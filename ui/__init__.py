"""User interfaces: the command line and the Gradio studio."""

__all__: list[str] = []
