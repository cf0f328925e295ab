"""Generation: samplers that integrate the flow-matching velocity field from noise to latents."""
