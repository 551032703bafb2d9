"""mmbench-example-itemknn: the `example-itemknn` model for mmbench."""
