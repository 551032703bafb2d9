"""Built-in dataset cards (TOML). Registered under the ``mmbench.datasets`` entry-point
group as a folder of cards, exactly as a plugin would ship its own; never imported."""
