"""One module per corpus mirror builder; each exposes build(ctx: MirrorContext)."""
