"""Rate limits (SPEC §2.2, §5): policies, the limiter on `limits` storage, and the ASGI layer."""
