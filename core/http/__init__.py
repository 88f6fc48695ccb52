"""The HTTP layer: request pipeline, route auth policies, problem responses, health routes."""
