"""Quality evals: both writers over written news days, measured the way the editorial gate measures."""
