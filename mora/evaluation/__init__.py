"""``mora eval``: the paper's metrics on a fixed evaluation set, and its tables and figures."""
