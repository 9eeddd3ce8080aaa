"""State dicts without who the sides are (a server's random ``identity``; a client's ``index`` and
``server``): two sides built alike hold the same numbers but belong to different servers."""


def numeric(state):
    """``state`` without the identity entries, recursively (tensors and numbers kept as they are)."""
    if isinstance(state, dict):
        client = (
            isinstance(state.get("index"), int)
            and "server" in state
            and not isinstance(state["server"], dict)
        )
        drop = ("index", "server") if client else ("identity",)
        return {k: numeric(v) for k, v in state.items() if k not in drop}
    if isinstance(state, (list, tuple)):
        return type(state)(numeric(v) for v in state)
    return state
