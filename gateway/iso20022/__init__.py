"""ISO 20022 messages: building what we send, reading what banks send, XSDs and hardened parsing."""
