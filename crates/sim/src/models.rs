//! Models of what the pump core cannot see.
