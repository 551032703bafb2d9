"""Built-in baselines (import name ``mmbench_baselines``). Each module holds one model and
is registered through the ``mmbench.models`` entry-point group, exactly like a plugin."""
