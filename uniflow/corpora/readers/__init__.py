"""One module per corpus reader; each exposes entries(corpus_dir, recipe) -> Iterator[Entry | Problem]."""
